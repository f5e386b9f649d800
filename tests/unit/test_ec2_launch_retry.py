"""RunInstances refusals (issue 13, defect 4), offline in moto with injected EC2 errors and a fake
clock: capacity and quota errors leave the dataset queued with the reason in its certificate and
retry with backoff, then fail it after a bounded time with the last AWS error; a user-data over
EC2's 16 KB limit ends the dataset failed with a reason instead of escaping."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto_world import BUCKET, aws, client, provision, submit  # noqa: F401 (aws: a fixture)

from ncaas_dev.cloud.ec2.refusals import is_retryable
from ncaas_dev.dispatch.dispatcher import Dispatcher
from ncaas_dev.jobstore import JobStore
from ncaas_dev.launchers.ec2 import Ec2Launcher
from ncaas_dev.layout import JobPaths
from ncaas_dev.settings import Settings
from ncaas_dev.status import State
from ncaas_dev.storage import Storage


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class Refusals:
    """A before-call hook: RunInstances answers ``code`` while ``left`` > 0."""

    def __init__(self, code: str, message: str, left: int) -> None:
        self.code, self.message, self.left, self.calls = code, message, left, 0

    def __call__(self, **_: Any) -> None:
        self.calls += 1
        if self.left > 0:
            self.left -= 1
            error = {"Error": {"Code": self.code, "Message": self.message}}
            raise ClientError(error, "RunInstances")  # type: ignore[arg-type]


def _world(tmp_path: Path, refusals: Refusals | None, **blueprint: Any) -> tuple[Any, ...]:
    s3, ec2, iam = client("s3"), client("ec2"), client("iam")
    storage = Storage(s3, None)
    provision(storage, ec2, iam, **blueprint)
    if refusals is not None:
        ec2.meta.events.register("before-call.ec2.RunInstances", refusals)
    settings = Settings(endpoint_url=None, region="us-east-1", state_dir=tmp_path)
    clock = Clock()
    launcher = Ec2Launcher(settings, storage, ec2, iam, clock=clock)
    dispatcher = Dispatcher(storage, launcher, None, "us-east-1", sweep_interval=1e9)
    dispatcher.scheduler.clock = clock
    return storage, dispatcher, clock


def _dataset(storage: Storage, job: str) -> Any:
    return JobStore(storage, BUCKET).read("labA", job).datasets["d.bin"]


@pytest.mark.usefixtures("aws")
def test_no_capacity_waits_queued_then_fails_with_the_last_aws_error(tmp_path: Path) -> None:
    refusals = Refusals("InsufficientInstanceCapacity", "We do not have capacity", left=99)
    storage, dispatcher, clock = _world(tmp_path, refusals)
    outcome = dispatcher.handle(submit(storage))
    job = outcome.job or ""
    ds = _dataset(storage, job)
    assert ds.state == State.QUEUED and ds.runner is None
    assert "InsufficientInstanceCapacity" in (ds.reason or "")
    certificate, _ = storage.get_bytes(BUCKET, JobPaths("labA", job).certificate)
    assert b"WAITING: waiting for EC2" in certificate
    assert refusals.calls == 1

    clock.now += 10  # inside the first backoff: not asked again
    dispatcher.pump()
    assert refusals.calls == 1
    clock.now += 10
    dispatcher.pump()
    assert refusals.calls == 2 and _dataset(storage, job).state == State.QUEUED

    clock.now += 30 * 60
    dispatcher.pump()
    ds = _dataset(storage, job)
    assert ds.state == State.FAILED, ds
    assert "last AWS error" in (ds.reason or "") and "InsufficientInstanceCapacity" in ds.reason


@pytest.mark.usefixtures("aws")
def test_a_new_account_being_verified_waits_queued_with_what_that_means(tmp_path: Path) -> None:
    message = "Your request for accessing resources in this region is being validated"
    refusals = Refusals("PendingVerification", message, left=1)
    storage, dispatcher, clock = _world(tmp_path, refusals)
    job = dispatcher.handle(submit(storage)).job or ""
    ds = _dataset(storage, job)
    assert ds.state == State.QUEUED and ds.runner is None
    assert "PendingVerification" in (ds.reason or "")
    assert "still verifying this new account" in (ds.reason or ""), ds.reason
    clock.now += 20
    dispatcher.pump()
    assert (_dataset(storage, job).runner or "").startswith("ec2:i-")


@pytest.mark.usefixtures("aws")
def test_a_refusal_that_clears_launches(tmp_path: Path) -> None:
    message = (
        "Value (runner) for parameter iamInstanceProfile.name is invalid. "
        "Invalid IAM Instance Profile name"
    )
    refusals = Refusals("InvalidParameterValue", message, left=1)
    storage, dispatcher, clock = _world(tmp_path, refusals)
    job = dispatcher.handle(submit(storage)).job or ""
    assert _dataset(storage, job).state == State.QUEUED
    clock.now += 20
    dispatcher.pump()
    ds = _dataset(storage, job)
    assert (ds.runner or "").startswith("ec2:i-") and ds.state == State.QUEUED, ds


@pytest.mark.usefixtures("aws")
def test_user_data_over_16_kb_fails_the_dataset_with_a_reason(tmp_path: Path) -> None:
    storage, dispatcher, _ = _world(tmp_path, None, run={"env": {"BIG": "x" * 17000}})
    job = dispatcher.handle(submit(storage)).job or ""
    ds = _dataset(storage, job)
    assert ds.state == State.FAILED, ds
    assert "user-data" in (ds.reason or "") and "16384" in (ds.reason or "")


@pytest.mark.parametrize(
    ("code", "message", "retry"),
    [
        ("InsufficientInstanceCapacity", "", True),
        ("VcpuLimitExceeded", "", True),
        ("InstanceLimitExceeded", "", True),
        ("RequestLimitExceeded", "", True),
        ("PendingVerification", "", True),
        ("InvalidParameterValue", "Invalid IAM Instance Profile name", True),
        ("InvalidParameterValue", "Invalid value for instanceType", False),
        ("InvalidAMIID.NotFound", "", False),
        ("UnauthorizedOperation", "", False),
    ],
)
def test_which_errors_are_retried(code: str, message: str, retry: bool) -> None:
    error = ClientError({"Error": {"Code": code, "Message": message}}, "RunInstances")
    assert is_retryable(error) is retry
