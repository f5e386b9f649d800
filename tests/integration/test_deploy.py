"""`ncaas-dev deploy` into the test session's LocalStack, in both orders with `run`/`up`, checked
resource by resource. (The Lambda handler is driven in test_access.py, under the dispatcher
role's own credentials on moto's IAM-enforcing server.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from ncaas_dev.analysis import AnalysisRecord, load_record
from ncaas_dev.aws import iam_client, s3_client, sqs_client
from ncaas_dev.blueprint import LoadedBlueprint, load_blueprint
from ncaas_dev.cloud.deploy import names as n
from ncaas_dev.cloud.deploy.deploy import deploy
from ncaas_dev.cloud.layout import load_stack_record
from ncaas_dev.layout import GROUP_FOLDERS, group_prefix
from ncaas_dev.local.provision import provision
from ncaas_dev.settings import Settings
from ncaas_dev.status import State
from ncaas_dev.storage import Storage

from .iam_world import Moto, moto_server  # noqa: F401  (the fixture)
from .jobs import ROOT, Lab, copy_blueprint, ncaas

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# The Lambda package is cached by content across sessions (cold: ~11 s of pip from PyPI).
PACKAGE_CACHE = ROOT / "build" / "test-deploy"


def fresh_blueprint(tmp_path: Path, prefix: str = "ncaas-deploy") -> Path:
    return copy_blueprint(FIXTURES / "probe", tmp_path / "probe", prefix)


def deploy_json(folder: Path, env: dict[str, str]) -> dict[str, Any]:
    done = ncaas(["deploy", str(folder), "--json"], env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def assert_stack_is_really_there(
    doc: dict[str, Any], settings: Settings, storage: Storage, analysis: str
) -> None:
    assert doc["status"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE")
    assert doc["missing"] == [], doc["checks"]
    assert doc["dispatcher"] == "local SQS loop"
    kinds = sorted(r["type"] for r in doc["resources"])
    assert kinds.count("AWS::IAM::Role") == 2
    assert kinds.count("AWS::IAM::InstanceProfile") == 1
    assert kinds.count("AWS::IAM::Group") == 2
    assert kinds.count("AWS::IAM::User") == 2
    assert "AWS::Lambda::Function" not in kinds  # LocalStack cannot run it: the SQS loop serves
    # Looked up here too, not only through deploy's own checks.
    s3 = storage.s3
    assert all(
        s3.get_public_access_block(Bucket=analysis)["PublicAccessBlockConfiguration"].values()
    )
    (rule,) = s3.get_bucket_encryption(Bucket=analysis)["ServerSideEncryptionConfiguration"][
        "Rules"
    ]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    (lifecycle,) = s3.get_bucket_lifecycle_configuration(Bucket=analysis)["Rules"]
    assert lifecycle["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    iam = iam_client(settings)
    members = iam.get_group(GroupName=n.group_name(analysis, "labA"))["Users"]
    assert [u["UserName"] for u in members] == [n.user_name(analysis, "labA", "alice")]
    policy = iam.get_group_policy(
        GroupName=n.group_name(analysis, "labB"), PolicyName="ncaas-group-access"
    )["PolicyDocument"]
    policy = json.loads(policy) if isinstance(policy, str) else policy
    (listing,) = [s for s in policy["Statement"] if s["Sid"] == "ListOwnPrefixOnly"]
    assert listing["Condition"]["StringLike"]["s3:prefix"] == ["labB/", "labB/*"]
    # The stack record the EC2 launcher reads: the instance profile by name, and it exists.
    record = load_stack_record(storage, analysis)
    assert record is not None
    assert record.stack_name == n.stack_name(analysis)
    assert record.instance_profile == n.instance_profile_name(analysis)
    assert record.instance_profile == doc["outputs"]["InstanceProfileName"]
    profile = iam.get_instance_profile(InstanceProfileName=record.instance_profile)
    assert [r["RoleName"] for r in profile["InstanceProfile"]["Roles"]] == [
        n.instance_role_name(analysis)
    ]
    # Provisioned as the local stack expects: folders, notifications to the queue, record.
    for group in ("labA", "labB"):
        for folder in GROUP_FOLDERS:
            assert storage.head(analysis, group_prefix(group, folder)) is not None
    config = s3.get_bucket_notification_configuration(Bucket=analysis)
    assert [q["QueueArn"].rsplit(":", 1)[1] for q in config["QueueConfigurations"]] == [
        "ncaas-submissions",
        "ncaas-submissions",  # submissions and cancel requests
    ]
    assert load_record(storage, analysis) is not None


def test_deploy_first_then_up_then_deploy_again(
    tmp_path: Path, cli_env: dict[str, str], settings: Settings, storage: Storage
) -> None:
    folder = fresh_blueprint(tmp_path)
    loaded = load_blueprint(folder)
    analysis = loaded.blueprint.analysis
    first = deploy_json(folder, cli_env)
    assert first["action"] == "created"
    assert first["bucket_in_stack"] is True
    assert_stack_is_really_there(first, settings, storage, analysis)
    print(f"deploy into LocalStack: created in {first['seconds']} s")

    again = deploy_json(folder, cli_env)
    assert again["action"] == "unchanged"
    assert again["missing"] == []

    # `run`/`up` after deploy: provisioning finds the bucket and keeps the stack's record.
    provision(storage, sqs_client(settings), settings, AnalysisRecord.of(loaded, "sha256:built"))
    third = deploy_json(folder, cli_env)
    assert third["action"] == "unchanged"
    assert_stack_is_really_there(third, settings, storage, analysis)
    record = load_record(storage, analysis)
    assert record is not None and record.image_id == "sha256:built"  # deploy kept `up`'s record


def test_run_first_then_deploy_and_the_local_loop_keeps_serving(
    cli_env: dict[str, str],
    settings: Settings,
    storage: Storage,
    probe: LoadedBlueprint,
    dispatcher: int,
) -> None:
    """The session's probe was provisioned (as `run` does) before this deploy."""
    analysis = probe.blueprint.analysis
    before = load_record(storage, analysis)
    doc = deploy_json(probe.folder, cli_env)
    assert doc["action"] == "created"
    assert doc["bucket_in_stack"] is False  # made outside the stack: referenced, then secured
    assert_stack_is_really_there(doc, settings, storage, analysis)
    assert load_record(storage, analysis) == before
    lab = Lab(storage, analysis)
    status = lab.run(dataname=lab.dataset(), configname=lab.config(lines=2))
    assert status.state == State.SUCCEEDED, status.reason
    assert deploy_json(probe.folder, cli_env)["action"] == "unchanged"


def test_bad_blueprint_exits_2_and_deploys_nothing(tmp_path: Path, cli_env: dict[str, str]) -> None:
    folder = fresh_blueprint(tmp_path)
    doc = yaml.safe_load((folder / "blueprint.yaml").read_text())
    del doc["groups"]
    (folder / "blueprint.yaml").write_text(yaml.safe_dump(doc))
    done = ncaas(["deploy", str(folder)], cli_env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "groups" in done.stderr


def test_a_failing_resource_exits_1_with_its_reason_and_a_redeploy_recovers(
    tmp_path: Path, cli_env: dict[str, str], settings: Settings
) -> None:
    folder = fresh_blueprint(tmp_path)
    analysis = load_blueprint(folder).blueprint.analysis
    iam = iam_client(settings)
    taken = n.user_name(analysis, "labA", "alice")
    iam.create_user(UserName=taken)  # the stack's user name, already used
    done = ncaas(["deploy", str(folder)], cli_env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "EntityAlreadyExists" in done.stderr
    assert n.logical_id("User", "labA", "alice") in done.stderr
    iam.delete_user(UserName=taken)
    assert deploy_json(folder, cli_env)["action"] == "created"


def test_the_cloud_path_against_moto(
    tmp_path: Path,
    moto_server: Moto,  # noqa: F811  (the fixture imported above)
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`--cloud`'s code path (no endpoint: boto3's own chain), pointed at moto's server, which
    implements CloudFormation with Lambda: the code is packaged and uploaded into the bucket
    the stack creates, then the Lambda is added. Real AWS is not reachable here."""
    for name in ("AWS_PROFILE", "NCAAS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "moto")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "moto")
    folder = fresh_blueprint(tmp_path, prefix="ncaas-cloud")
    loaded = load_blueprint(folder)
    analysis = loaded.blueprint.analysis
    cloud = Settings(endpoint_url=None, region="us-east-1", state_dir=PACKAGE_CACHE)
    result = deploy(loaded, cloud)
    assert result.action == "created"
    assert result.bucket_in_stack is True
    assert result.dispatcher == f"lambda {n.dispatcher_function_name(analysis)}"
    assert result.package is not None
    storage = Storage(s3_client(cloud), None)
    artifact = storage.head(analysis, result.package["key"])
    assert artifact is not None and artifact.size == result.package["bytes"]
    checks = {c.logical_id: c for c in result.checks}
    assert checks[n.DISPATCHER_FUNCTION].present, checks[n.DISPATCHER_FUNCTION]
    assert checks[n.INSTANCE_PROFILE].present
    record = load_stack_record(storage, analysis)
    assert record is not None
    assert record.dispatcher_function == n.dispatcher_function_name(analysis)
    assert record.instance_profile == n.instance_profile_name(analysis)
    assert load_record(storage, analysis) is not None
    assert storage.head(analysis, "labB/submissions/") is not None
    print(f"cloud path on moto: {result.seconds:.1f} s, package {result.package}")
    again = deploy(loaded, cloud)
    assert again.package is not None and again.package["built"] is False  # cached by content
    assert again.package["key"] == result.package["key"]
