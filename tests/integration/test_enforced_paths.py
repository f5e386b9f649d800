"""The cloud path's own code, run as each principal of the stack with IAM enforced (issue 24).

LocalStack lets every call through, so a call the generated policies do not allow passes
offline and fails on AWS. Here the real code runs against moto's server, which enforces the
template's policies (``iam_world.py``, ``moto_iam_server.py``), each path as its principal:

- a group member (alice) uploads a file dataset, a folder dataset and a config, submits,
  reads the results, and is refused elsewhere;
- the dispatcher, as the Lambda runs it with the dispatcher role, admits the submission,
  launches one instance per dataset (RunInstances checked per resource, with PassRole and
  CreateTags), and sweeps and reaps;
- the runner, as the EC2 user-data starts it with the instance role, fetches each dataset
  (a file, a folder) and the config, runs the analysis in real Docker, streams its log,
  uploads outputs, and reports status and end.txt.

Every refusal the code reports names the IAM action and the resource it needed.
"""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from waiting import wait_until  # tests/ is on sys.path: pytest's rootdir conftest

from integration.iam_world import Moto, Principal, World, build_world
from integration.iam_world import moto_server as moto_server  # a fixture
from integration.jobs import copy_blueprint, pin_image, remove_image
from ncaas_dev.analysis import AnalysisRecord, save_record
from ncaas_dev.blueprint import Blueprint, load_blueprint
from ncaas_dev.client import AnalysisClient, Submitted
from ncaas_dev.cloud.deploy import lambda_handler
from ncaas_dev.cloud.deploy import names as n
from ncaas_dev.cloud.deploy.policies import instance_policy
from ncaas_dev.cloud.layout import TAG_BUCKET, StackRecord, save_stack_record
from ncaas_dev.containers import Engine
from ncaas_dev.layout import JobPaths
from ncaas_dev.status import JobStatus, State
from ncaas_dev.storage import AccessDenied, Storage

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PROFILE = "ncaas-iam-runner-profile"
RUNNER_TIMEOUT_S = 180


@dataclass
class Scene:
    moto: Moto
    world: World
    blueprint: Blueprint
    bucket: str

    def storage(self, principal: Principal) -> Storage:
        return Storage(principal.s3)

    def client(self, user: str) -> AnalysisClient:
        return AnalysisClient(self.storage(self.world.users[user]), self.bucket)

    def status(self, group: str, job: str) -> JobStatus:
        doc, _ = self.storage(self.world.admin).get_json(self.bucket, JobPaths(group, job).status)
        return JobStatus.model_validate(doc)

    def instances(self, group: str, job: str) -> list[dict[str, Any]]:
        # Job names are unique per group only: two groups' jobs made in one second share one.
        reply = self.world.admin.ec2.describe_instances(
            Filters=[
                {"Name": "tag:ncaas:job", "Values": [job]},
                {"Name": "tag:ncaas:group", "Values": [group]},
            ]
        )
        return [i for r in reply["Reservations"] for i in r["Instances"]]


@pytest.fixture(scope="module")
def scene(
    moto_server: Moto, engine: Engine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scene]:
    """The probe analysis built, provisioned in moto with an AMI and a stack record, and the
    template's principals made; then enforcement on."""
    folder = copy_blueprint(FIXTURES / "probe", tmp_path_factory.mktemp("iam-probe"), "ncaas-iam")
    loaded = load_blueprint(folder)
    image_id = engine.build(loaded)
    pin_image(engine, loaded.blueprint.image_tag)
    ami = moto_server.client("ec2").describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    cloud = loaded.blueprint.cloud.model_copy(update={"ami": ami})
    blueprint = loaded.blueprint.model_copy(update={"cloud": cloud})
    bucket = blueprint.bucket
    setup = Storage(moto_server.client("s3"))
    setup.s3.create_bucket(Bucket=bucket)
    record = AnalysisRecord(
        blueprint=blueprint,
        content_hash=loaded.content_hash,
        image=blueprint.image_tag,
        image_id=image_id,
    )
    save_record(setup, record, bucket)
    world = build_world(moto_server, blueprint)  # enforcement is on from here
    iam = world.admin.iam
    iam.create_instance_profile(InstanceProfileName=PROFILE)
    role = world.role_arns[n.INSTANCE_ROLE].rsplit("/", 1)[-1]
    iam.add_role_to_instance_profile(InstanceProfileName=PROFILE, RoleName=role)
    save_stack_record(
        Storage(world.admin.s3), bucket, StackRecord(stack_name="s", instance_profile=PROFILE)
    )
    yield Scene(moto_server, world, blueprint, bucket)
    remove_image(engine, blueprint.image_tag)


def s3_event(bucket: str, key: str) -> dict[str, Any]:
    """What S3 hands a Lambda function."""
    record = {"bucket": {"name": bucket}, "object": {"key": key, "size": 5}}
    return {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": record}]}


@pytest.fixture(scope="module")
def as_lambda(scene: Scene) -> Iterator[Any]:
    """The Lambda handler with the dispatcher role's credentials in its environment, as AWS
    runs it (no endpoint of ncaas-dev's own: boto3 reads AWS_ENDPOINT_URL)."""
    env = scene.world.roles[n.DISPATCHER_ROLE].environment(scene.moto.endpoint)
    with pytest.MonkeyPatch.context() as mp:
        for name in ("NCAAS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
            mp.delenv(name, raising=False)
        for name, value in env.items():
            if name.startswith("AWS_"):
                mp.setenv(name, value)
        mp.setenv("NCAAS_ANALYSIS", scene.blueprint.analysis)
        mp.setenv("NCAAS_BUCKET", scene.bucket)
        mp.setattr(lambda_handler, "_dispatcher", None)
        yield lambda_handler.handler


@pytest.fixture(scope="module")
def submitted(scene: Scene, tmp_path_factory: pytest.TempPathFactory) -> Submitted:
    """alice, with her own keys: a file dataset, a folder dataset and a config, one job."""
    local = tmp_path_factory.mktemp("alice")
    (local / "rec.bin").write_bytes(b"\x01" * 4096)
    folder = local / "session"
    (folder / "probe2").mkdir(parents=True)
    (folder / "probe1.bin").write_bytes(b"a" * 100)
    (folder / "probe2" / "meta.json").write_text("{}")
    (local / "params.json").write_text(json.dumps({"lines": 4}))
    alice = scene.client("alice")
    data = [alice.upload(local / "rec.bin", "labA", "inputs"), alice.upload_folder(folder, "labA")]
    config = alice.upload(local / "params.json", "labA", "configs")
    return alice.submit("labA", data, config)


@pytest.fixture(scope="module")
def dispatched(scene: Scene, submitted: Submitted, as_lambda: Any) -> str:
    """The S3 event of alice's submission handed to the Lambda: admitted and launched."""
    (outcome,) = as_lambda(s3_event(scene.bucket, submitted.key))["outcomes"]
    assert outcome["action"] == "started", outcome
    return str(outcome["job"])


def task_of(principal: Principal, instance: str) -> str:
    """The task JSON the instance's user-data hands the runner, read back from EC2."""
    attribute = principal.ec2.describe_instance_attribute(InstanceId=instance, Attribute="userData")
    script = base64.b64decode(attribute["UserData"]["Value"]).decode()
    lines = script.splitlines()
    start = next(i for i, line in enumerate(lines) if line.endswith("<<'NCAAS_TASK_JSON'"))
    return lines[start + 1]


@pytest.fixture(scope="module")
def ran(scene: Scene, dispatched: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Each launched instance's runner, started as its user-data starts it, with the instance
    role's credentials; then the instance powered off as the runner's script does."""
    env = scene.world.roles[n.INSTANCE_ROLE].environment(scene.moto.endpoint)
    work = tmp_path_factory.mktemp("instances")
    for instance in scene.instances("labA", dispatched):
        iid = instance["InstanceId"]
        task = work / f"{iid}.json"
        task.write_text(task_of(scene.world.admin, iid))
        done = subprocess.run(
            [sys.executable, "-m", "ncaas_dev.runner", str(task), f"ec2:{iid}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=RUNNER_TIMEOUT_S,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        scene.world.admin.ec2.terminate_instances(InstanceIds=[iid])
    return dispatched


def test_the_dispatcher_admits_launches_sweeps_and_reaps_as_the_lambda_role(
    scene: Scene, dispatched: str, as_lambda: Any, tmp_path: Path
) -> None:
    status = scene.status("labA", dispatched)
    assert set(status.datasets) == {"rec.bin", "session"}
    instances = scene.instances("labA", dispatched)
    assert len(instances) == 2
    for instance in instances:
        assert instance["IamInstanceProfile"]["Arn"].endswith(f"/{PROFILE}")
        tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
        assert tags["ncaas:bucket"] == scene.bucket and tags["ncaas:group"] == "labA"
    runners = {ds.runner for ds in status.datasets.values()}
    assert runners == {f"ec2:{i['InstanceId']}" for i in instances}

    # carol's job, whose instance dies before its runner reports: the sweep reaps it
    (tmp_path / "c.bin").write_bytes(b"c")
    carol = scene.client("carol")
    lost = carol.submit("labB", [carol.upload(tmp_path / "c.bin", "labB", "inputs")], None)
    (outcome,) = as_lambda(s3_event(scene.bucket, lost.key))["outcomes"]
    assert outcome["action"] == "started", outcome
    (instance,) = scene.instances("labB", outcome["job"])
    scene.world.admin.ec2.terminate_instances(InstanceIds=[instance["InstanceId"]])
    lambda_handler._dispatcher = None  # a cold start: nothing remembered of the launch
    swept = as_lambda({"source": "aws.events", "detail-type": "Scheduled Event"})
    assert swept["sweep"] is True
    ended = scene.status("labB", outcome["job"])
    assert ended.state == State.FAILED, ended
    assert "instance lost" in (ended.datasets["c.bin"].reason or "")


def test_the_runner_fetches_runs_and_reports_as_the_instance_role(scene: Scene, ran: str) -> None:
    status = scene.status("labA", ran)
    assert status.state == State.SUCCEEDED, status.model_dump_json(indent=1)
    admin = scene.storage(scene.world.admin)
    paths = JobPaths("labA", ran)
    folder_facts, _ = admin.get_json(scene.bucket, paths.outputs("session") + "facts.json")
    assert folder_facts["files"] == ["probe1.bin", "probe2/meta.json"]  # the folder, whole
    file_facts, _ = admin.get_json(scene.bucket, paths.outputs("rec.bin") + "facts.json")
    assert file_facts["data_bytes"] == 4096
    log, _ = admin.get_bytes(scene.bucket, paths.log("rec.bin"))
    assert b"line 3" in log  # the config's "lines": 4 reached the analysis
    assert admin.head(scene.bucket, paths.end) is not None
    certificate, _ = admin.get_bytes(scene.bucket, paths.certificate)
    assert b"STATUS: succeeded" in certificate


def test_a_group_user_uploads_submits_reads_results_and_nothing_else(
    scene: Scene, ran: str, submitted: Submitted, tmp_path: Path
) -> None:
    alice = scene.client("alice")
    assert alice.job_of(submitted) == ran  # found by its status.json: claims are out of reach
    assert alice.finished("labA", ran)
    assert alice.status("labA", ran).state == State.SUCCEEDED
    folder = alice.download("labA", ran, tmp_path)
    assert (folder / "process_results" / "session" / "facts.json").is_file()
    assert (folder / "process_results" / "end.txt").is_file()

    (tmp_path / "x.bin").write_bytes(b"x")
    with pytest.raises(AccessDenied) as refused:
        alice.upload(tmp_path / "x.bin", "labB", "inputs")
    assert f"s3:PutObject on arn:aws:s3:::{scene.bucket}/labB/inputs/x.bin" in str(refused.value)
    with pytest.raises(AccessDenied) as refused:
        alice.jobs("labB")
    assert f"s3:ListBucket on arn:aws:s3:::{scene.bucket} (prefix 'labB/results/')" in str(
        refused.value
    )
    with pytest.raises(AccessDenied):
        alice.storage.get_json(scene.bucket, ".ncaas/blueprint.json")


def _runner_with(scene: Scene, name: str, policy: dict[str, Any]) -> Storage:
    """A role holding ``policy``, assumed by the scene-setter: a runner's storage."""
    admin = scene.world.admin
    anyone = {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}
    trust = {"Version": "2012-10-17", "Statement": [anyone]}
    arn = admin.iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
    admin.iam.put_role_policy(RoleName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
    sts = scene.moto.client(
        "sts", admin.credentials["AccessKeyId"], admin.credentials["SecretAccessKey"]
    )
    creds = sts.assume_role(RoleArn=arn["Role"]["Arn"], RoleSessionName="before")["Credentials"]
    args = (creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    return Storage(scene.moto.client("s3", *args))


def test_a_folder_dataset_needs_the_prefix_listing_and_gets_no_more(
    scene: Scene, submitted: Submitted, tmp_path: Path
) -> None:
    """The fix, both ways: without its listing statement the instance role cannot fetch a
    folder dataset (the refusal names the action, the bucket and the prefix); with it, it can
    list the groups' inputs and nothing else."""
    runner = Storage(scene.world.roles[n.INSTANCE_ROLE].s3)
    prefix = "labA/inputs/session/"
    assert runner.download_tree(scene.bucket, prefix, tmp_path / "ok") == 2
    for elsewhere in ("", "labA/", "labA/results/", "labA/submissions/", ".ncaas/", "labA/inputsx"):
        with pytest.raises(AccessDenied) as refused:
            runner.list_objects(scene.bucket, elsewhere)
        assert f"s3:ListBucket on arn:aws:s3:::{scene.bucket}" in str(refused.value)

    policy = json.loads(json.dumps(scene.world.policies[n.INSTANCE_ROLE]))
    policy["Statement"] = [s for s in policy["Statement"] if "s3:ListBucket" not in s["Action"]]
    assert len(policy["Statement"]) < len(instance_policy(scene.blueprint)["Statement"])
    before_the_fix = _runner_with(scene, "runner-before-the-fix", policy)
    with pytest.raises(AccessDenied) as refused:
        before_the_fix.download_tree(scene.bucket, prefix, tmp_path / "refused")
    assert (
        f"s3:ListBucket on arn:aws:s3:::{scene.bucket} (prefix '{prefix}') is not allowed"
        in str(refused.value)
    )


def test_a_launch_the_policy_does_not_allow_fails_naming_action_and_resource(
    scene: Scene, as_lambda: Any, tmp_path: Path
) -> None:
    """RunInstances is allowed only of the baked AMI: a record naming another (a re-bake not
    yet deployed) is refused by IAM, and the dataset's reason says which action on what."""
    admin = Storage(scene.world.admin.s3)
    images = scene.world.admin.ec2.describe_images(Owners=["amazon"])["Images"]
    other = next(i["ImageId"] for i in images if i["ImageId"] != scene.blueprint.cloud.ami)
    record, _ = admin.get_json(scene.bucket, ".ncaas/blueprint.json")
    try:
        changed = json.loads(json.dumps(record))
        changed["blueprint"]["cloud"]["ami"] = other
        admin.put_json(scene.bucket, ".ncaas/blueprint.json", changed)
        (tmp_path / "r.bin").write_bytes(b"r")
        carol = scene.client("carol")
        sent = carol.submit("labB", [carol.upload(tmp_path / "r.bin", "labB", "inputs")], None)
        lambda_handler._dispatcher = None
        (outcome,) = as_lambda(s3_event(scene.bucket, sent.key))["outcomes"]
        reason = scene.status("labB", outcome["job"]).datasets["r.bin"].reason or ""
        assert "RunInstances failed" in reason, reason
        assert f"ec2:RunInstances on resource: arn:aws:ec2:us-east-1::image/{other}" in reason
    finally:
        admin.put_json(scene.bucket, ".ncaas/blueprint.json", record)


def test_a_cancel_runs_as_each_principal_and_ends_the_dataset_cancelled(
    scene: Scene, as_lambda: Any, tmp_path: Path
) -> None:
    """alice's cancel file (her own keys); the Lambda's handling of it (the dispatcher role:
    mark the dataset, terminate its instance); and the runner stopped by the instance's
    shutdown (the instance role: partial outputs, the cancelled status)."""
    alice = scene.client("alice")
    (tmp_path / "long.bin").write_bytes(b"l" * 10)
    (tmp_path / "long.json").write_text(json.dumps({"lines": 1, "sleep": 120}))
    data = alice.upload(tmp_path / "long.bin", "labA", "inputs")
    sent = alice.submit("labA", [data], alice.upload(tmp_path / "long.json", "labA", "configs"))
    (outcome,) = as_lambda(s3_event(scene.bucket, sent.key))["outcomes"]
    assert outcome["action"] == "started", outcome
    job = str(outcome["job"])
    (instance,) = scene.instances("labA", job)
    iid = instance["InstanceId"]
    task = tmp_path / "task.json"
    task.write_text(task_of(scene.world.admin, iid))
    env = scene.world.roles[n.INSTANCE_ROLE].environment(scene.moto.endpoint)
    runner = subprocess.Popen(
        [sys.executable, "-m", "ncaas_dev.runner", str(task), f"ec2:{iid}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(
            lambda: any("analysis started" in e.message for e in scene.status("labA", job).events),
            90,
            "the analysis started",
            0.2,
        )
        key = alice.cancel("labA", job, by="alice")
        (cancelled,) = as_lambda(s3_event(scene.bucket, key))["outcomes"]
        assert cancelled["action"] == "cancelled", cancelled
        (after,) = scene.instances("labA", job)
        assert after["State"]["Name"] in ("shutting-down", "terminated")
        runner.send_signal(signal.SIGTERM)  # what the instance's shutdown does to its runner
        _, err = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    ds = scene.status("labA", job).datasets["long.bin"]
    assert ds.state == State.CANCELLED, ds
    assert (ds.reason or "").startswith("cancelled by alice at "), ds.reason
    assert "not allowed" not in err and "AccessDenied" not in err, err[-3000:]


def test_the_dispatcher_role_may_terminate_only_its_own_analysis_instances(scene: Scene) -> None:
    ami = scene.blueprint.cloud.ami
    tags = [{"Key": TAG_BUCKET, "Value": "another-analysis"}]
    reply = scene.world.admin.ec2.run_instances(
        ImageId=ami,
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
    )
    foreign = reply["Instances"][0]["InstanceId"]
    with pytest.raises(ClientError) as refused:
        scene.world.roles[n.DISPATCHER_ROLE].ec2.terminate_instances(InstanceIds=[foreign])
    assert "ec2:TerminateInstances on resource: arn:aws:ec2:us-east-1:" in str(refused.value)
    assert f"instance/{foreign}" in str(refused.value)
