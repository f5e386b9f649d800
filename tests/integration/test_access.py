"""The generated policies, proven by an independent IAM evaluator (moto), not assumed.

LocalStack's free edition does not enforce IAM, so the proof runs on moto's server, which
does, extended to evaluate the conditions the policies use (``moto_iam_server.py``); the
principals are the template's own (``iam_world.py``): each group user acts with their own
access keys, each role with credentials from ``AssumeRole``. The cloud path's own code run
as these principals is proven in ``test_enforced_paths.py``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.iam.access_control import IAMPolicy, PermissionResult

from integration.iam_world import ACCOUNT, REGION, Moto, Principal, World, build_world
from integration.iam_world import moto_server as moto_server  # a fixture
from ncaas_dev.analysis import AnalysisRecord
from ncaas_dev.blueprint import Blueprint, parse_blueprint
from ncaas_dev.cloud.deploy import lambda_handler
from ncaas_dev.cloud.deploy import names as n
from ncaas_dev.layout import BLUEPRINT_RECORD

pytestmark = pytest.mark.integration

BUCKET = "spike-access"
OTHER_BUCKET = "someone-elses-bucket"


def the_blueprint() -> Blueprint:
    return parse_blueprint(
        {
            "analysis": BUCKET,
            "groups": [
                {"name": "labA", "users": ["alice"]},
                {"name": "labB", "users": ["carol"]},
            ],
        },
        "test",
    )


@pytest.fixture(scope="module")
def world(moto_server: Moto) -> World:
    """The scene (two buckets, both provisioned), then the template's principals."""
    blueprint = the_blueprint()
    admin_s3 = moto_server.client("s3")
    for bucket in (BUCKET, OTHER_BUCKET):
        admin_s3.create_bucket(Bucket=bucket)
    for key in (
        "labA/inputs/rec.bin", "labA/configs/p.json", "labA/submissions/x_submit.json",
        "labA/results/job_1/logs/status.json", "labB/inputs/rec.bin",
        "labB/submissions/y_submit.json", "labB/results/job_2/logs/status.json",
    ):  # fmt: skip
        admin_s3.put_object(Bucket=BUCKET, Key=key, Body=b"data")
    admin_s3.put_object(Bucket=OTHER_BUCKET, Key="labA/inputs/rec.bin", Body=b"data")
    for bucket in (BUCKET, OTHER_BUCKET):  # both look provisioned to a dispatcher
        record = AnalysisRecord(
            blueprint=blueprint.model_copy(update={"analysis": bucket}),
            content_hash="test",
            image=f"ncaas/{bucket}:latest",
        )
        admin_s3.put_object(
            Bucket=bucket, Key=BLUEPRINT_RECORD, Body=record.model_dump_json().encode()
        )

    return build_world(moto_server, blueprint)


def allowed(call: Any, *args: Any, **kwargs: Any) -> bool:
    """Whether the call went through (True) or was refused with AccessDenied (False)."""
    try:
        call(*args, **kwargs)
        return True
    except ClientError as e:
        code = e.response["Error"]["Code"]
        assert code in ("AccessDenied", "UnauthorizedOperation", "403"), e
        return False


def put(p: Principal, key: str, bucket: str = BUCKET) -> bool:
    return allowed(p.s3.put_object, Bucket=bucket, Key=key, Body=b"x")


def get(p: Principal, key: str, bucket: str = BUCKET) -> bool:
    return allowed(p.s3.get_object, Bucket=bucket, Key=key)


def test_enforcement_is_on(world: World, moto_server: Moto) -> None:
    """Unknown credentials are refused: the checks below are evaluated, not waved through."""
    stranger = moto_server.client("s3", "AKIAUNKNOWNKEY000000", "nope")
    with pytest.raises(ClientError):
        stranger.get_object(Bucket=BUCKET, Key="labA/inputs/rec.bin")


@pytest.mark.parametrize(
    ("user", "own", "other"), [("alice", "labA", "labB"), ("carol", "labB", "labA")]
)
def test_group_user_works_in_own_prefix_only(world: World, user: str, own: str, other: str) -> None:
    p = world.users[user]
    for folder in ("inputs", "configs", "submissions"):
        assert put(p, f"{own}/{folder}/new-{user}"), f"{user} may write {own}/{folder}/"
        assert not put(p, f"{other}/{folder}/new-{user}"), f"{user} wrote {other}/{folder}/"
    assert get(p, f"{own}/results/job_{1 if own == 'labA' else 2}/logs/status.json")
    assert get(p, f"{own}/inputs/rec.bin")
    assert not put(p, f"{own}/results/job_1/logs/status.json"), "users must not forge results"
    assert not get(p, f"{other}/inputs/rec.bin")
    assert not get(p, f"{other}/results/job_{2 if own == 'labA' else 1}/logs/status.json")
    assert not get(p, ".ncaas/blueprint.json")
    assert not put(p, ".ncaas/ledger/labA.json"), "users must not edit the budget ledger"
    assert not put(p, f"top-level-{user}")
    assert not get(p, "labA/inputs/rec.bin", bucket=OTHER_BUCKET)
    assert not put(p, f"{own}/inputs/x", bucket=OTHER_BUCKET)
    assert not allowed(p.s3.delete_object, Bucket=BUCKET, Key=f"{own}/inputs/rec.bin")
    assert not allowed(p.s3.list_objects_v2, Bucket=OTHER_BUCKET)
    assert allowed(p.s3.list_objects_v2, Bucket=BUCKET, Prefix=f"{own}/")


@pytest.mark.parametrize("group", ["labA", "labB"])
def test_group_listing_condition_keeps_users_in_their_prefix(world: World, group: str) -> None:
    """The s3:prefix condition, evaluated by the server on each listing."""
    p = world.users["alice" if group == "labA" else "carol"]
    other = "labB" if group == "labA" else "labA"

    def lists(prefix: str) -> bool:
        return allowed(p.s3.list_objects_v2, Bucket=BUCKET, Prefix=prefix)

    for prefix in (f"{group}/", f"{group}/results/", f"{group}/inputs/rec"):
        assert lists(prefix), prefix
    for prefix in ("", f"{other}/", f"{other}/results/", ".ncaas/", group, f"{group}x/", "l"):
        assert not lists(prefix), prefix


def test_instance_role_reads_inputs_and_writes_results_only(world: World) -> None:
    runner = world.roles[n.INSTANCE_ROLE]
    for group in ("labA", "labB"):
        assert get(runner, f"{group}/inputs/rec.bin")
        assert put(runner, f"{group}/results/job_9/process_results/out.txt")
        assert not put(runner, f"{group}/inputs/rec.bin"), "a runner must not alter inputs"
        assert not put(runner, f"{group}/submissions/z_submit.json")
    assert get(runner, "labA/results/job_1/logs/status.json")  # status.json: read-modify-write
    assert put(runner, ".ncaas/ledger/labA.json")  # whoever ends a dataset charges it
    # whoever ends a job drops it from the index of open jobs, and may delete nothing else
    assert allowed(runner.s3.delete_object, Bucket=BUCKET, Key=".ncaas/open/labA/job_1")
    assert not allowed(runner.s3.delete_object, Bucket=BUCKET, Key=".ncaas/ledger/labA.json")
    assert not allowed(runner.s3.delete_object, Bucket=BUCKET, Key="labA/inputs/rec.bin")
    assert not get(runner, "labA/submissions/x_submit.json")
    assert not put(runner, ".ncaas/blueprint.json")
    assert not get(runner, "labA/inputs/rec.bin", bucket=OTHER_BUCKET)
    assert not allowed(runner.s3.list_objects_v2, Bucket=BUCKET)
    assert not allowed(runner.ec2.describe_instances)
    assert not allowed(runner.iam.list_users)


def test_dispatcher_role_reads_submissions_writes_job_folders(world: World) -> None:
    dispatcher = world.roles[n.DISPATCHER_ROLE]
    assert get(dispatcher, "labB/submissions/y_submit.json")
    assert get(dispatcher, "labA/inputs/rec.bin")  # heads the inputs a submission names
    assert get(dispatcher, ".ncaas/blueprint.json")
    assert put(dispatcher, "labA/results/job_3/logs/status.json")
    assert put(dispatcher, ".ncaas/claims/abc.json")
    assert allowed(dispatcher.s3.delete_object, Bucket=BUCKET, Key=".ncaas/open/labB/job_2")
    assert not allowed(dispatcher.s3.delete_object, Bucket=BUCKET, Key=".ncaas/claims/abc.json")
    assert allowed(dispatcher.s3.list_objects_v2, Bucket=BUCKET, Prefix="labA/submissions/")
    assert not put(dispatcher, "labA/inputs/rec.bin"), "the dispatcher must not alter inputs"
    assert not put(dispatcher, "labA/submissions/forged_submit.json")
    assert put(dispatcher, "labA/submissions/y_submit.json.job")  # the pointer to its job
    assert not put(dispatcher, "labA/submissions/y.job"), "nothing but a submission's pointer"
    assert not get(dispatcher, "labA/inputs/rec.bin", bucket=OTHER_BUCKET)
    assert not put(dispatcher, "x", bucket=OTHER_BUCKET)
    assert allowed(dispatcher.ec2.describe_instances)
    assert not allowed(dispatcher.ec2.describe_vpcs)
    assert not allowed(dispatcher.iam.list_users)


def test_dispatcher_passes_only_the_instance_role_to_ec2(world: World) -> None:
    """PassRole is not checked by moto's RunInstances: evaluated offline on the same document."""
    policy = IAMPolicy(json.dumps(world.policies[n.DISPATCHER_ROLE]))
    runner_arn = world.role_arns[n.INSTANCE_ROLE]
    to_ec2 = {"iam:PassedToService": "ec2.amazonaws.com"}
    assert policy.is_action_permitted("iam:PassRole", runner_arn, None, to_ec2) == (
        PermissionResult.PERMITTED
    )
    for arn in (world.role_arns[n.DISPATCHER_ROLE], f"arn:aws:iam::{ACCOUNT}:role/admin"):
        assert policy.is_action_permitted("iam:PassRole", arn, None, to_ec2) != (
            PermissionResult.PERMITTED
        )
    to_lambda = {"iam:PassedToService": "lambda.amazonaws.com"}
    assert policy.is_action_permitted("iam:PassRole", runner_arn, None, to_lambda) != (
        PermissionResult.PERMITTED
    )
    for action in ("ec2:DescribeInstances", "ec2:DescribeImages"):
        assert policy.is_action_permitted(action, "*") == PermissionResult.PERMITTED
    # RunInstances is scoped (AMI, type, bucket tag: tests/unit/test_template.py).
    image = "arn:aws:ec2:us-east-1::image/ami-0123456789abcdef0"
    assert policy.is_action_permitted("ec2:RunInstances", image) == PermissionResult.PERMITTED
    for action in ("ec2:TerminateInstances", "iam:CreateUser", "s3:DeleteObject", "s3:*"):
        assert policy.is_action_permitted(action, "*") != PermissionResult.PERMITTED
    logs = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/"
    function = n.dispatcher_function_name(BUCKET)
    assert policy.is_action_permitted("logs:PutLogEvents", f"{logs}{function}:log-stream:x") == (
        PermissionResult.PERMITTED
    )
    assert policy.is_action_permitted("logs:PutLogEvents", f"{logs}other:log-stream:x") != (
        PermissionResult.PERMITTED
    )


def s3_event(bucket: str, key: str) -> dict[str, Any]:
    """What S3 hands a Lambda function."""
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 5}},
            }
        ]
    }


def test_lambda_handler_works_with_the_dispatcher_role_alone(
    world: World, moto_server: Moto, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The handler as the Lambda runs it (no endpoint override, credentials from the
    environment), with the dispatcher role's credentials: its policy is enough for the event
    path and the sweep, and the sweep stays in its own bucket."""
    creds = world.credentials[n.DISPATCHER_ROLE]
    for name in ("NCAAS_ENDPOINT_URL", "AWS_PROFILE", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)  # boto3 reads it itself
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", creds["SessionToken"])
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("NCAAS_ANALYSIS", BUCKET)
    monkeypatch.setattr(lambda_handler, "_dispatcher", None)
    for ledger in ("labA", "labB"):  # the runner test's write is no ledger
        world.admin.s3.delete_object(Bucket=BUCKET, Key=f".ncaas/ledger/{ledger}.json")
    alice = world.users["alice"]
    key = "labA/submissions/event_submit.json"
    body = json.dumps({"dataname": "labA/inputs/missing.bin"}).encode()
    alice.s3.put_object(Bucket=BUCKET, Key=key, Body=body)

    (outcome,) = lambda_handler.handler(s3_event(BUCKET, key))["outcomes"]
    assert outcome["action"] == "rejected", outcome
    assert "missing.bin" in outcome["reason"]
    status_key = f"labA/results/{outcome['job']}/logs/status.json"
    status = json.loads(alice.s3.get_object(Bucket=BUCKET, Key=status_key)["Body"].read())
    assert status["state"] == "rejected"

    # A lost event: the sweep finds the submission. The other bucket also looks provisioned
    # and holds a lost submission, but the function neither lists nor reads it.
    lost = "labB/submissions/lost_submit.json"
    world.users["carol"].s3.put_object(Bucket=BUCKET, Key=lost, Body=body)
    admin = world.admin.s3
    foreign = "labA/submissions/foreign_submit.json"
    admin.put_object(Bucket=OTHER_BUCKET, Key=foreign, Body=body)
    swept = lambda_handler.handler({"source": "aws.events", "detail-type": "Scheduled Event"})
    assert swept["sweep"] is True
    results = alice.s3.list_objects_v2(Bucket=BUCKET, Prefix="labA/")  # alice: own prefix
    assert any(o["Key"].endswith("status.json") for o in results.get("Contents", []))
    carol_jobs = world.users["carol"].s3.list_objects_v2(Bucket=BUCKET, Prefix="labB/results/")
    assert any(o["Key"].endswith("/end.txt") for o in carol_jobs.get("Contents", []))
    claims = admin.list_objects_v2(Bucket=OTHER_BUCKET, Prefix=".ncaas/claims/")
    assert claims.get("KeyCount", 0) == 0, "the sweep touched another analysis's bucket"


def test_a_group_user_follows_a_submission_with_own_keys(world: World) -> None:
    """`submit --wait` as a lab member: the claim under .ncaas/ is out of reach, so the job is
    found by the pointer the dispatcher leaves beside the submission (readable in the group's
    own prefix), and a missing end.txt reads as "not finished", not an error."""
    from ncaas_dev.client import AnalysisClient, Submitted
    from ncaas_dev.layout import pointer_doc, submission_pointer_key
    from ncaas_dev.storage import AccessDenied, Storage

    alice = AnalysisClient(Storage(world.users["alice"].s3), BUCKET)
    key = "labA/submissions/follow_submit.json"
    etag = world.users["alice"].s3.put_object(Bucket=BUCKET, Key=key, Body=b"{}")["ETag"]
    submitted = Submitted(key, etag.strip('"'))
    with pytest.raises(AccessDenied):  # claims are the dispatcher's, out of a user's reach
        alice.storage.get_json(BUCKET, ".ncaas/claims/anything.json")
    assert alice.job_of(submitted) is None  # no job yet
    status = {"job": "job_9", "submission": key}
    world.admin.s3.put_object(
        Bucket=BUCKET, Key="labA/results/job_9/logs/status.json", Body=json.dumps(status).encode()
    )
    world.admin.s3.put_object(  # the admission's last step, as the dispatcher writes it
        Bucket=BUCKET,
        Key=submission_pointer_key(key),
        Body=json.dumps(pointer_doc(key, submitted.etag, "job_9")).encode(),
    )
    assert alice.job_of(submitted) == "job_9"
    assert alice.finished("labA", "job_9") is False
    world.admin.s3.put_object(Bucket=BUCKET, Key="labA/results/job_9/process_results/end.txt")
    assert alice.finished("labA", "job_9") is True
