"""The EC2 reaper against an eventually consistent EC2 (issue 13, defect 3), offline: EC2 stubbed
with a fake clock, or the whole path (S3, EC2, IAM) in moto's in-process mock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto_world import BUCKET, aws, client, provision, submit  # noqa: F401 (aws: a fixture)

from ncaas_dev.analysis import load_record
from ncaas_dev.budget import Budget
from ncaas_dev.dispatch.dispatcher import Dispatcher
from ncaas_dev.jobstore import JobStore
from ncaas_dev.launchers.base import DatasetTask
from ncaas_dev.launchers.ec2 import NOT_FOUND_GRACE_S, Ec2Launcher
from ncaas_dev.runs.runner import Runner
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


@pytest.mark.usefixtures("aws")
def test_an_instance_that_died_unwatched_ends_lost_with_its_budget_settled(tmp_path: Path) -> None:
    s3, ec2, iam = client("s3"), client("ec2"), client("iam")
    storage = Storage(s3, None)
    provision(storage, ec2, iam)
    settings = Settings(endpoint_url=None, region="us-east-1", state_dir=tmp_path)

    first = Dispatcher(storage, Ec2Launcher(settings, storage, ec2, iam), None, "us-east-1")
    outcome = first.handle(submit(storage))
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
    task = second.scheduler.task(BUCKET, record, status, "d.bin")
    runner = Runner(storage, None, settings)  # type: ignore[arg-type]  # never reaches Docker
    assert runner.run(task, ds.runner or "") == State.FAILED
    Runner._finish(store, task, State.SUCCEEDED, None, 0, 1, {})
    assert store.read("labA", outcome.job or "").datasets["d.bin"].reason == ds.reason
