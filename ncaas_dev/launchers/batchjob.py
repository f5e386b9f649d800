"""What the Batch launcher submits and how it reads Batch's answer (pure functions).

One Batch job per dataset attempt. The job runs the same job runner as every other launcher,
in a container that starts the analysis container on the host's Docker (as the compose stack's
sibling runners do, and as the EC2 user-data does on the baked AMI). The task travels in the
job's environment (``NCAAS_TASK``), so Batch itself holds everything a restarted dispatcher
needs to adopt a job: no shared folder, no database.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from dataclasses import dataclass
from typing import Any

from ..status import State
from .base import DatasetTask

NAME_PREFIX = "ncaas-"
TASK_ENV = "NCAAS_TASK"
ATTEMPT_ENV = "NCAAS_ATTEMPT"
# The job's attempt may run this much past run.timeout: fetching inputs, uploading outputs.
STAGING_MARGIN_S = int(os.environ.get("NCAAS_BATCH_STAGING_MARGIN_S", "600"))
# The reason TerminateJob gets when a user cancels: how reap tells a cancel from a reclaim.
CANCEL_REASON = "ncaas-dev: cancelled"
# AWS Batch's status reason when the host went away (spot reclaim, instance lost); the
# deploy template's retryStrategy retries on the same pattern (evaluateOnExit onStatusReason).
HOST_REASON_PREFIX = "Host EC2"
# Exit codes of a container killed by a signal (SIGKILL, SIGTERM): its host stopped it.
KILLED_CODES = {137, 143}
LIVE_STATES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")
ENDED_STATES = ("SUCCEEDED", "FAILED")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
MIB = 1024**2


def queue_name(task: DatasetTask) -> str:
    return task.record.blueprint.batch.job_queue or f"{NAME_PREFIX}{task.record.blueprint.analysis}"


def definition_name(task: DatasetTask) -> str:
    """Content-addressed: the image and the blueprint's hash name it, so an unchanged analysis
    registers nothing new (Batch definitions are immutable revisions)."""
    digest = hashlib.sha256(f"{task.record.image_id}|{task.record.content_hash}".encode())
    # The same name as the deploy template's (cloud/deploy/batch.py).
    return f"{NAME_PREFIX}{task.record.blueprint.analysis}-{digest.hexdigest()[:16]}"[:128]


def dataset_digest(task: DatasetTask) -> str:
    return hashlib.sha256(task.label.encode()).hexdigest()[:12]


def job_name(task: DatasetTask, attempt: int) -> str:
    """``ncaas-{analysis}-{dataset}-{digest}-a{attempt}`` (Batch: 128 of [A-Za-z0-9_-])."""
    readable = _UNSAFE.sub("_", f"{task.bucket}-{task.dataset}")[:80]
    return f"{NAME_PREFIX}{readable}-{dataset_digest(task)}-a{attempt}"


def name_pattern(task: DatasetTask) -> str:
    """Every attempt's name of the dataset, as a JOB_NAME filter (a prefix and ``*``)."""
    return job_name(task, 0).rsplit("-a", 1)[0] + "-a*"


def attempt_of(name: str) -> int:
    tail = name.rsplit("-a", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def attempt_seconds(task: DatasetTask) -> int:
    return task.timeout_seconds + STAGING_MARGIN_S


def runner_command(uid: int, gid: int, docker_gid: int | None) -> list[str]:
    """The job container's command: the task from the environment into a file, then the
    runner, as the invoking user (root only when ncaas-dev runs as root)."""
    drop: list[str] = []
    if uid != 0:
        groups = f"--groups={docker_gid}" if docker_gid is not None else "--clear-groups"
        drop = ["setpriv", f"--reuid={uid}", f"--regid={gid}", groups, "--"]
    script = (
        f'printf %s "${TASK_ENV}" > /tmp/ncaas-task.json && exec "$@" /tmp/ncaas-task.json '
        '"batch:$AWS_BATCH_JOB_ID"'
    )
    return [*drop, "sh", "-c", script, "ncaas-runner", "python3", "-m", "ncaas_dev.runner"]


def container_overrides(task: DatasetTask, attempt: int) -> dict[str, Any]:
    return {
        "environment": [
            {"name": TASK_ENV, "value": task.model_dump_json()},
            {"name": ATTEMPT_ENV, "value": str(attempt)},
        ]
    }


def resource_requirements(task: DatasetTask) -> list[dict[str, str]]:
    """What Batch places the job by: the blueprint's cpus, memory and gpu."""
    resources = task.record.blueprint.resources
    needs = [
        {"type": "VCPU", "value": str(max(1, math.ceil(resources.cpus)))},
        {"type": "MEMORY", "value": str(max(4, math.ceil(resources.memory / MIB)))},
    ]
    if resources.gpu:
        needs.append({"type": "GPU", "value": "1"})
    return needs


def retry_strategy(retries: int) -> dict[str, Any]:
    """Batch's own retries, where the service retries (AWS): again on a host's loss, never on
    the analysis's own failure. moto ignores it; the launcher retries there itself."""
    return {
        "attempts": min(10, retries + 1),
        "evaluateOnExit": [
            {"onStatusReason": f"{HOST_REASON_PREFIX}*", "action": "RETRY"},
            {"onReason": "*", "action": "EXIT"},
        ],
    }


@dataclass(frozen=True)
class Ended:
    """How an attempt that ended without the runner's result is to be taken."""

    state: State | None  # None: an interruption, to retry while attempts remain
    reason: str


def read_end(summary: dict[str, Any], task: DatasetTask) -> Ended:
    """A Batch job (ListJobs/DescribeJobs) that ended while its dataset has no result yet."""
    job_id = summary.get("jobId", "?")
    reason = str(summary.get("statusReason") or "")
    code = (summary.get("container") or {}).get("exitCode")
    if reason.startswith(CANCEL_REASON):
        return Ended(State.CANCELLED, reason.removeprefix("ncaas-dev: ").strip())
    started, stopped = summary.get("startedAt"), summary.get("stoppedAt")
    ran = (stopped - started) / 1000 if started and stopped else 0.0
    if "timeout" in reason.lower() or ran >= attempt_seconds(task):
        return Ended(
            State.TIMED_OUT,
            f"killed at Batch's attempt timeout ({attempt_seconds(task)} s: run.timeout "
            f"{task.timeout_seconds} s plus {STAGING_MARGIN_S} s for staging); raise "
            "run.timeout in the blueprint or give it a smaller dataset",
        )
    if reason.startswith(HOST_REASON_PREFIX):
        return Ended(None, f"Batch job {job_id}: {reason}")
    if code is None or code in KILLED_CODES:
        how = f"its container was killed (exit code {code})" if code else "it never reported"
        return Ended(None, f"Batch job {job_id}: host lost, {how}")
    return Ended(
        State.FAILED,
        f"infrastructure error: the runner of Batch job {job_id} exited with code {code} "
        "without recording a result; submit the dataset again",
    )


def given_up(attempts: int, interruptions: list[str]) -> str:
    """The reason of a dataset whose every attempt was interrupted."""
    said = "; ".join(f"attempt {n}: {why}" for n, why in enumerate(interruptions, 1))
    return (
        f"interrupted {len(interruptions)} times, no attempt left of {attempts} "
        f"(batch.retries {attempts - 1}): {said}. Submit the dataset again, or set "
        "batch.spot: false for on-demand hosts"
    )
