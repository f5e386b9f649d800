"""The EC2 reaper against an eventually consistent EC2 (issue 13, defect 3), offline: EC2 stubbed
with a fake clock, or the whole path (S3, EC2, IAM) in moto's in-process mock."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from ncaas_dev.analysis import AnalysisRecord, load_record, save_record
from ncaas_dev.blueprint import parse_blueprint
from ncaas_dev.budget import Budget
from ncaas_dev.cloud.layout import StackRecord, save_stack_record
from ncaas_dev.dispatcher import Dispatcher
from ncaas_dev.events import ObjectCreated
from ncaas_dev.jobstore import JobStore
from ncaas_dev.launchers.base import DatasetTask
from ncaas_dev.launchers.ec2 import NOT_FOUND_GRACE_S, Ec2Launcher
from ncaas_dev.runner import Runner
from ncaas_dev.settings import Settings
from ncaas_dev.status import State
from ncaas_dev.storage import Storage

MakeTask = Callable[..., DatasetTask]
INSTANCE = "i-0123456789abcdef0"
T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def _reservations(state: str | None) -> dict[str, Any]:
    if state is None:
        return {"Reservations": []}  # not listed (yet)
    instance = {"InstanceId": INSTANCE, "State": {"Name": state, "Code": 0}}
    return {"Reservations": [{"Instances": [instance]}]}


@pytest.fixture
def stubbed(tmp_path: Path) -> Iterator[tuple[Ec2Launcher, Stubber, Clock]]:
    ec2 = boto3.client(
        "ec2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    clock = Clock()
    settings = Settings(endpoint_url=None, region="us-east-1", state_dir=tmp_path)
    launcher = Ec2Launcher(settings, None, ec2=ec2, iam=object(), clock=clock)  # type: ignore[arg-type]
    with Stubber(ec2) as stub:
        stub.add_response("describe_instances", {"Reservations": []}, {"Filters": ANY})  # adopt
        yield launcher, stub, clock


def test_an_instance_not_listed_for_60_s_then_running_is_not_lost(
    stubbed: tuple[Ec2Launcher, Stubber, Clock], make_task: MakeTask
) -> None:
    launcher, stub, clock = stubbed
    launcher.watch(make_task(), f"ec2:{INSTANCE}", T0)
    for seconds, state in ((0, None), (30, None), (60, None), (70, "running")):
        clock.now = T0 + seconds
        stub.add_response("describe_instances", _reservations(state), {"Filters": ANY})
        assert launcher.reap() == [], f"taken for lost after {seconds} s"
    clock.now = T0 + 900
    stub.add_response("describe_instances", _reservations("terminated"), {"Filters": ANY})
    (ended,) = launcher.reap()
    assert ended.detail == f"instance lost: {INSTANCE} is terminated"


def test_an_instance_still_not_listed_after_the_grace_is_lost(
    stubbed: tuple[Ec2Launcher, Stubber, Clock], make_task: MakeTask
) -> None:
    launcher, stub, clock = stubbed
    launcher.watch(make_task(), f"ec2:{INSTANCE}", T0)
    clock.now = T0 + NOT_FOUND_GRACE_S + 1
    stub.add_response("describe_instances", _reservations(None), {"Filters": ANY})
    (ended,) = launcher.reap()
    assert ended.detail == f"instance lost: {INSTANCE} is not found"


# -- the whole path in moto: a dataset whose instance died while no dispatcher watched ---------
BUCKET = "spike-reaper"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from moto import mock_aws

    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "NCAAS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield


def _client(service: str) -> Any:
    return boto3.client(service, region_name="us-east-1")  # type: ignore[call-overload]


def _provision(storage: Storage, ec2: Any, iam: Any) -> None:
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    doc = {
        "analysis": BUCKET,
        "groups": [{"name": "labA", "users": []}],
        "cloud": {"ami": ami},
    }
    blueprint = parse_blueprint(doc, "test")
    storage.s3.create_bucket(Bucket=BUCKET)
    record = AnalysisRecord(blueprint=blueprint, content_hash="0" * 64, image="x", image_id=None)
    save_record(storage, record)
    iam.create_role(RoleName="runner", AssumeRolePolicyDocument="{}")
    iam.create_instance_profile(InstanceProfileName="runner")
    iam.add_role_to_instance_profile(InstanceProfileName="runner", RoleName="runner")
    save_stack_record(storage, BUCKET, StackRecord(stack_name="s", instance_profile="runner"))


def test_an_instance_that_died_unwatched_ends_lost_with_its_budget_settled(
    aws: None, tmp_path: Path
) -> None:
    s3, ec2, iam = _client("s3"), _client("ec2"), _client("iam")
    storage = Storage(s3, None)
    _provision(storage, ec2, iam)
    settings = Settings(endpoint_url=None, region="us-east-1", state_dir=tmp_path)
    s3.put_object(Bucket=BUCKET, Key="labA/inputs/d.bin", Body=b"x" * 100)
    key = "labA/submissions/s_submit.json"
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps({"dataname": "labA/inputs/d.bin"}))
    etag = s3.head_object(Bucket=BUCKET, Key=key)["ETag"].strip('"')

    first = Dispatcher(storage, Ec2Launcher(settings, storage, ec2, iam), None, "us-east-1")
    outcome = first.handle(ObjectCreated(BUCKET, key, etag, 1))
    assert outcome.action == "started", outcome
    store = JobStore(storage, BUCKET)
    ds = store.read("labA", outcome.job or "").datasets["d.bin"]
    assert ds.state == State.QUEUED and (ds.runner or "").startswith("ec2:i-")
    assert Budget(storage, BUCKET).read("labA").reserved  # held for the running dataset
    instance = (ds.runner or "").removeprefix("ec2:")

    # The first dispatcher is gone; the instance dies with nobody watching.
    ec2.terminate_instances(InstanceIds=[instance])
    later = datetime.now(UTC).timestamp() + 3600
    second_launcher = Ec2Launcher(settings, storage, ec2, iam, clock=lambda: later)
    second = Dispatcher(storage, second_launcher, None, "us-east-1")
    second.recover()

    ds = store.read("labA", outcome.job or "").datasets["d.bin"]
    assert ds.state == State.FAILED, ds
    assert f"instance lost: {instance} is terminated" in (ds.reason or "")
    assert Budget(storage, BUCKET).read("labA").reserved == {}  # charged, not held forever

    # A runner that boots after all never overwrites the decided state, nor runs.
    record = load_record(storage, BUCKET)
    assert record is not None
    status = store.read("labA", outcome.job or "")
    task = second.scheduler._task(BUCKET, record, status, "d.bin")
    runner = Runner(storage, None, settings)  # type: ignore[arg-type]  # never reaches Docker
    assert runner.run(task, ds.runner or "") == State.FAILED
    Runner._finish(store, task, State.SUCCEEDED, None, 0, 1, {})
    assert store.read("labA", outcome.job or "").datasets["d.bin"].reason == ds.reason
