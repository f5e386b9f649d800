"""The Batch launcher's pure parts: names, what a job's container runs, how an attempt that
recorded nothing is read. The real server: tests/integration/batch/."""

from __future__ import annotations

import re
import subprocess
from typing import Any

from conftest import MakeTask

from ncaas_dev.launchers.batchjob import (
    CANCEL_REASON,
    STAGING_MARGIN_S,
    attempt_of,
    definition_name,
    given_up,
    job_name,
    name_pattern,
    read_end,
    resource_requirements,
    retry_strategy,
    runner_command,
)
from ncaas_dev.status import State

BATCH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{1,127}$")


def test_job_names_are_valid_per_attempt_and_match_their_pattern(make_task: MakeTask) -> None:
    task = make_task().model_copy(update={"dataset": "a b(1)é" * 30})
    first, second = job_name(task, 1), job_name(task, 2)
    assert BATCH_NAME.match(first) and BATCH_NAME.match(second), first
    assert first != second and (attempt_of(first), attempt_of(second)) == (1, 2)
    prefix = name_pattern(task).removesuffix("*")
    assert first.startswith(prefix) and second.startswith(prefix)
    other = task.model_copy(update={"dataset": task.dataset + "x"})
    assert not job_name(other, 1).startswith(prefix)  # another dataset: another digest


def test_definition_is_content_addressed(make_task: MakeTask) -> None:
    task = make_task()
    same = task.model_copy(update={"job": "job_other"})
    assert definition_name(task) == definition_name(same)
    record = task.record.model_copy(update={"content_hash": "f" * 64})
    assert definition_name(task.model_copy(update={"record": record})) != definition_name(task)


def test_resources_and_retry_strategy(make_task: MakeTask) -> None:
    task = make_task(resources={"cpus": 1.5, "memory": "2g"})
    assert resource_requirements(task) == [
        {"type": "VCPU", "value": "2"},
        {"type": "MEMORY", "value": "2048"},
    ]
    strategy = retry_strategy(2)
    assert strategy["attempts"] == 3
    assert strategy["evaluateOnExit"] == [
        {"onStatusReason": "Host EC2*", "action": "RETRY"},
        {"onReason": "*", "action": "EXIT"},
    ]


def test_runner_command_drops_root_and_passes_the_job_id() -> None:
    assert runner_command(0, 0, 999)[:2] == ["sh", "-c"]
    command = runner_command(1000, 1000, 999)
    assert command[:5] == ["setpriv", "--reuid=1000", "--regid=1000", "--groups=999", "--"]
    # The script really writes the task and runs the runner with it and the job's id.
    script = runner_command(0, 0, None)
    done = subprocess.run(
        [*script[:4], "sh", "-c", 'cat "$1"; echo " $2"', "-"],
        env={"NCAAS_TASK": '{"t":1}', "AWS_BATCH_JOB_ID": "j-1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == '{"t":1} batch:j-1\n'


def summary(**kw: Any) -> dict[str, Any]:
    return {"jobId": "j-9", "jobName": "ncaas-x-a1", "status": "FAILED", **kw}


def test_end_without_a_result_is_read_as_batch_said(make_task: MakeTask) -> None:
    task = make_task(run={"timeout": 60})
    host = read_end(summary(statusReason="Host EC2 (instance i-1) terminated."), task)
    assert host.state is None and "Host EC2 (instance i-1) terminated." in host.reason
    killed = read_end(summary(container={"exitCode": 137}), task)
    assert killed.state is None and "host lost" in killed.reason
    cancelled = read_end(summary(statusReason=f"{CANCEL_REASON} by labA"), task)
    assert cancelled.state == State.CANCELLED and "cancelled by labA" in cancelled.reason
    ran = (60 + STAGING_MARGIN_S) * 1000
    slow = read_end(summary(startedAt=1000, stoppedAt=1000 + ran), task)
    assert slow.state == State.TIMED_OUT and "attempt timeout" in slow.reason
    crashed = read_end(summary(container={"exitCode": 1}), task)
    assert crashed.state == State.FAILED and "exited with code 1" in crashed.reason


def test_given_up_names_every_interruption() -> None:
    text = given_up(2, ["Batch job a: host lost", "Batch job b: Host EC2 terminated"])
    assert text.startswith("interrupted 2 times")
    assert "attempt 1: Batch job a" in text and "attempt 2: Batch job b" in text
    assert "batch.retries 1" in text


class SpotHistory:
    def __init__(self, entries: list[dict[str, Any]] | None) -> None:
        self.entries = entries

    def describe_spot_price_history(self, **_: Any) -> dict[str, Any]:
        if self.entries is None:
            raise RuntimeError("UnauthorizedOperation")
        return {"SpotPriceHistory": self.entries}


def test_spot_price_is_the_latest_per_zone_and_the_highest_zone() -> None:
    from datetime import datetime

    from ncaas_dev.launchers.batchenv import spot_price

    def at(hour: int, zone: str, price: str) -> dict[str, Any]:
        return {
            "Timestamp": datetime(2026, 12, 2, hour),
            "AvailabilityZone": zone,
            "SpotPrice": price,
        }

    history = [at(1, "a", "0.09"), at(2, "a", "0.03"), at(2, "b", "0.035"), at(1, "b", "0.5")]
    assert spot_price(SpotHistory(history), "m5.large") == 0.035
    assert spot_price(SpotHistory([]), "m5.large") is None
    assert spot_price(SpotHistory(None), "m5.large") is None  # no permission: on-demand stays


def test_the_charge_is_the_spot_price_the_reservation_on_demand() -> None:
    from ncaas_dev.budget import cost_finished
    from ncaas_dev.status import DatasetStatus, JobStatus

    def job(**provenance: Any) -> JobStatus:
        ds = DatasetStatus(key="k", state=State.SUCCEEDED, started="2026-12-02T10:00:00Z")
        ds.finished = "2026-12-02T11:00:00Z"
        return JobStatus(job="j", analysis="a", group="g", submission="s",
                         datasets={"d": ds}, provenance=provenance)  # fmt: skip

    assert cost_finished(job(price_usd_per_hour=0.096), {}) == {"d": 0.096}
    spot = job(price_usd_per_hour=0.096, charge_usd_per_hour=0.035)
    assert cost_finished(spot, {}) == {"d": 0.035}
