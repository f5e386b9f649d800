"""`ncaas-dev cancel` and `Job.cancel()` write the same request as a user's S3 file, and
return once the job is cancelled (the browser's button: web/test_web_cancel.py)."""

from __future__ import annotations

import json

import pytest

import ncaas_dev
from ncaas_dev.containers import Engine
from ncaas_dev.settings import Settings
from ncaas_dev.status import State

from .api_env import point_at
from .jobs import Lab, ncaas
from .test_cancel import (  # noqa: F401 (lab_fixture: the fixture `lab`)
    LONG,
    STOP_BOUND_S,
    lab_fixture,
    running,
    seconds_until_gone,
    wait_running,
)

pytestmark = pytest.mark.integration


def long_job(lab: Lab, count: int = 1) -> str:
    keys = [lab.dataset() for _ in range(count)]
    return lab.wait_job(lab.submit(dataname=keys, configname=lab.config(**LONG)))


def test_the_cli_cancels_and_exits_0_once_cancelled(
    lab: Lab,
    engine: Engine,
    cli_env: dict[str, str],
) -> None:
    job = long_job(lab, 2)
    wait_running(lab, engine, job, count=2)
    first = next(iter(lab.client.status(lab.group, job).datasets))
    one = ncaas(["cancel", lab.bucket, job, "--dataset", first, "--json"], cli_env)
    assert one.returncode == 0, one.stderr
    doc = json.loads(one.stdout)
    assert doc["cancelled"] == [first] and doc["datasets"][first]["state"] == "cancelled"
    assert doc["datasets"][first]["reason"].startswith("cancelled by ")
    assert doc["state"] == "running"  # the other dataset runs on
    rest = ncaas(["cancel", lab.bucket, job], cli_env)
    assert rest.returncode == 0, rest.stderr
    assert f"{job}: cancelled" in rest.stdout
    assert seconds_until_gone(engine, lab, job) <= STOP_BOUND_S
    # Nothing left to cancel, a job the group does not have, a dataset it does not have: exit 2.
    again = ncaas(["cancel", lab.bucket, job], cli_env)
    assert again.returncode == 2 and "nothing left to cancel" in again.stderr, again.stderr
    other = ncaas(["cancel", lab.bucket, job, "--group", "labB"], cli_env)
    assert other.returncode == 2 and f"no job {job} in group labB" in other.stderr, other.stderr
    job2 = long_job(lab)
    bad = ncaas(["cancel", lab.bucket, job2, "--dataset", "nope.bin"], cli_env)
    assert bad.returncode == 2 and "has no dataset nope.bin" in bad.stderr, bad.stderr
    assert ncaas(["cancel", lab.bucket, job2], cli_env).returncode == 0


def test_job_cancel_writes_the_request_and_waits(
    lab: Lab,
    engine: Engine,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    point_at(monkeypatch, settings)
    job = ncaas_dev.job(lab.bucket, long_job(lab))
    wait_running(lab, engine, job.name)
    assert job.cancel(by="bob") == State.CANCELLED
    assert job.state == State.CANCELLED and job.finished
    (ds,) = job.datasets.values()
    assert (ds.reason or "").startswith("cancelled by bob at ")
    with pytest.raises(ncaas_dev.NcaasError, match="nothing left to cancel") as caught:
        job.cancel()
    assert caught.value.exit_code == 2
    assert not running(engine, lab, job.name)
