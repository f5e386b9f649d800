"""What the SLURM launcher submits and how it reads SLURM's answer (pure functions).

One SLURM job per dataset. Its batch script runs the same job runner as every other launcher,
with the task embedded (like EC2's user-data), so a compute node needs no shared folder with
the dispatcher: only the runner's Python, Docker and a route to S3.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..status import State
from .base import DatasetTask

# --time is run.timeout plus this, for fetching the inputs and uploading the outputs.
STAGING_MARGIN_S = int(os.environ.get("NCAAS_SLURM_STAGING_MARGIN_S", "600"))
# SLURM sends the batch script SIGUSR1 this long before the time limit: the runner stops the
# analysis, records timed_out and uploads the partial outputs before SLURM kills the job.
SIGNAL_LEAD_S = int(os.environ.get("NCAAS_SLURM_SIGNAL_LEAD_S", "120"))
TIME_LIMIT_SIGNAL = "USR1"
NAME_PREFIX = "ncaas-"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_DELIMITER = "NCAAS_TASK_JSON"
MIB = 1024**2

# SLURM's job states (squeue's %T), as mature executors (Nextflow, Snakemake) read them.
QUEUED_STATES = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING"}
RUNNING_STATES = {"RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT"}
LIVE_STATES = QUEUED_STATES | RUNNING_STATES
INFRASTRUCTURE_STATES = {"NODE_FAIL", "PREEMPTED", "BOOT_FAIL"}


@dataclass(frozen=True)
class SlurmJob:
    """One line of squeue: a job as SLURM sees it."""

    job_id: str
    name: str
    state: str
    reason: str
    exit_code: str
    comment: str

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES

    def identity(self) -> tuple[str, str, str, str] | None:
        """(bucket, group, job, dataset) from the comment the launcher gave it, if ours."""
        if not self.name.startswith(NAME_PREFIX):
            return None
        try:
            doc = json.loads(self.comment)
            return (str(doc["bucket"]), str(doc["group"]), str(doc["job"]), str(doc["dataset"]))
        except (ValueError, KeyError, TypeError):
            return None


SQUEUE_FORMAT = "JobID:|,Name:|,State:|,Reason:|,exit_code:|,Comment:"


def parse_squeue(text: str) -> dict[str, SlurmJob]:
    """squeue -h -O SQUEUE_FORMAT's output, by job id."""
    jobs: dict[str, SlurmJob] = {}
    for line in text.splitlines():
        parts = line.split("|", 5)
        if len(parts) < 6 or not parts[0].strip():
            continue
        job_id, name, state, reason, exit_code, comment = (p.strip() for p in parts)
        job = SlurmJob(job_id, name, state, reason, exit_code, comment)
        jobs[job.job_id] = job
    return jobs


def job_name(task: DatasetTask) -> str:
    """``ncaas-{analysis}-{job}-{dataset}``, with anything SLURM or a shell could mind as _."""
    raw = f"{NAME_PREFIX}{task.record.blueprint.analysis}-{task.job}-{task.dataset}"
    return _UNSAFE.sub("_", raw)[:200]


def job_comment(task: DatasetTask) -> str:
    """The dataset's exact identity, kept by SLURM with the job (adoption and the cap read it)."""
    ident = {"bucket": task.bucket, "group": task.group, "job": task.job, "dataset": task.dataset}
    return json.dumps(ident, separators=(",", ":"))


def time_limit_minutes(task: DatasetTask) -> int:
    return math.ceil((task.record.blueprint.run.timeout + STAGING_MARGIN_S) / 60)


def sbatch_args(task: DatasetTask, output: str) -> list[str]:
    """sbatch's options for the dataset; the blueprint's extra_args come last, so they win."""
    blueprint = task.record.blueprint
    slurm = blueprint.slurm
    args = [
        "--parsable",
        f"--job-name={job_name(task)}",
        f"--comment={job_comment(task)}",
        f"--time={time_limit_minutes(task)}",
        f"--cpus-per-task={math.ceil(blueprint.resources.cpus)}",
        f"--mem={math.ceil(blueprint.resources.memory / MIB)}M",
        "--no-requeue",
        f"--signal=B:{TIME_LIMIT_SIGNAL}@{SIGNAL_LEAD_S}",
        f"--output={output}",
    ]
    if blueprint.resources.gpu:
        args.append("--gres=gpu:1")
    for option in ("partition", "account", "qos"):
        value = getattr(slurm, option)
        if value:
            args.append(f"--{option}={value}")
    return args + list(slurm.extra_args)


def batch_script(task: DatasetTask, python: str) -> str:
    """The batch script: the task written to a file only the runner can still read, then the
    runner itself (exec'd, so SLURM's signals reach it directly)."""
    task_json = task.model_dump_json()
    if _DELIMITER in task_json:
        raise ValueError(f"the task of {task.label} contains {_DELIMITER}")
    return f"""#!/bin/bash
# ncaas-dev {__version__}: one dataset as one SLURM job.
# {task.label}
set -eu
task=$(mktemp "${{TMPDIR:-/tmp}}/ncaas-task.XXXXXX")
cat > "$task" <<'{_DELIMITER}'
{task_json}
{_DELIMITER}
exec 3<"$task"
rm -f "$task"
echo "ncaas: SLURM job $SLURM_JOB_ID on $(hostname) runs {shlex.quote(task.label)}"
exec {shlex.quote(python)} -m ncaas_dev.runner /dev/fd/3 "slurm:$SLURM_JOB_ID"
"""


def apptainer_command(task: DatasetTask, image_archive: str, work: str) -> list[str]:
    """How a site without Docker or runc would run the analysis under the container contract:
    ``apptainer exec`` of the image archive (``docker save``), with the same mounts, environment,
    no network and no home. Limits come from SLURM's allocation (--cpus-per-task, --mem) and
    Apptainer runs as the submitting user, never root. Rendered for docs/slurm.md; Apptainer
    is not installed here."""
    from ..runs.runner import container_spec

    spec = container_spec(task, Path(work))
    # No run.command: the image's own ENTRYPOINT/CMD, which `apptainer run` starts.
    verb = "exec" if spec.command else "run"
    command = ["apptainer", verb, "--containall", "--cleanenv", "--no-home"]
    if not spec.network:
        command += ["--net", "--network", "none"]
    for mount in spec.mounts:
        command += ["--bind", f"{mount.source}:{mount.target}:{'ro' if mount.read_only else 'rw'}"]
    for key, value in sorted(spec.environment.items()):
        command += ["--env", f"{key}={value}"]
    if spec.gpu:
        command.append("--nv")
    command.append(f"docker-archive://{image_archive}")
    return command + list(spec.command or [])


def ended_as(job: SlurmJob, task: DatasetTask) -> tuple[State | None, str]:
    """How a SLURM job that left the live states ended: the state to record if its runner did
    not record one (None: the runner's own result is the truth, so missing one means lost),
    and the reason in words a user can act on."""
    blueprint = task.record.blueprint
    state, jid = job.state, job.job_id
    if state == "COMPLETED":
        return None, f"SLURM job {jid} completed"
    if state in ("TIMEOUT", "DEADLINE"):
        return State.TIMED_OUT, (
            f"killed at SLURM's time limit ({time_limit_minutes(task)} min: run.timeout "
            f"{blueprint.run.timeout} s plus {STAGING_MARGIN_S} s for staging); raise "
            "run.timeout in the blueprint or give it a smaller dataset"
        )
    if state == "OUT_OF_MEMORY":
        gib = blueprint.resources.memory / 1024**3
        return State.FAILED, (
            f"out of memory: SLURM job {jid} used more than its {gib:g} GiB limit "
            "(raise resources.memory in the blueprint)"
        )
    if state == "CANCELLED":
        return State.CANCELLED, f"cancelled in SLURM (job {jid} was scancel'ed)"
    if state in INFRASTRUCTURE_STATES:
        return State.FAILED, (
            f"infrastructure error: SLURM job {jid} ended {state} ({job.reason}); "
            "submit the dataset again"
        )
    return None, f"SLURM job {jid} ended {state} (exit code {job.exit_code or '?'})"
