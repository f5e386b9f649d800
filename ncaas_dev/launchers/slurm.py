"""The SLURM launcher: one SLURM job per dataset, on a lab's own cluster.

Everything it needs to know lives in SLURM itself: each job's name says it is ours and its
comment names the dataset exactly. So the concurrency cap is counted from SLURM (it holds across
dispatcher restarts and across several dispatchers), and a restarted dispatcher adopts the
running jobs by name. SLURM says only whether a job is alive; the runner's record in S3 is the
truth, and SLURM's end state decides only for a runner that could not record one (the table in
docs/slurm.md). One ``squeue`` per pass serves every job.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..analysis import AnalysisRecord, load_record
from ..errors import NcaasError
from ..settings import Settings
from ..storage import Storage
from .base import DatasetTask, Finished, RetryableLaunchError
from .docker import remove_containers
from .slurmjob import (
    SQUEUE_FORMAT,
    SlurmJob,
    batch_script,
    ended_as,
    job_name,
    parse_squeue,
    sbatch_args,
)

log = logging.getLogger(__name__)
# squeue at most this often: a pass comes every 0.2-1 s, and a cluster's controller serves
# many users. SLURM's own view changes no faster than its scheduler passes anyway.
POLL_SECONDS = float(os.environ.get("NCAAS_SLURM_POLL_SECONDS", "2"))
# A job SLURM does not list (any more) is lost only after this long: a controller restarting
# or failing over answers without it for a while.
LOST_GRACE_SECONDS = float(os.environ.get("NCAAS_SLURM_LOST_GRACE_SECONDS", "120"))
COMMAND_TIMEOUT_S = 60
# sbatch's refusals that waiting can cure: the controller busy or restarting, a submit limit.
_TRANSIENT = (
    "Socket timed out",
    "Unable to contact slurm controller",
    "Resource temporarily unavailable",
    "Slurm temporarily unable",
    "MaxSubmitJobs",
    "AssocMaxSubmitJobLimit",
    "QOSMaxSubmitJobPerUserLimit",
)
Run = Callable[..., subprocess.CompletedProcess[str]]


@dataclass
class _Watched:
    task: DatasetTask
    since: float  # when it was launched (epoch seconds)
    missing_since: float | None = None


class SlurmLauncher:
    name = "slurm"
    # A job may wait in SLURM's queue for hours before its runner starts: the dispatcher
    # records the job id at once, so a restarted dispatcher knows it is launched.
    runner_announces_itself = False

    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        python: str | None = None,
        run: Run = subprocess.run,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.storage = storage
        # The compute nodes run the runner with this Python (a shared install on a cluster).
        self.python = python or os.environ.get("NCAAS_SLURM_PYTHON") or sys.executable
        self.output_dir = settings.state_dir / "slurm"
        self._run = run
        self.clock = clock
        self._live: dict[str, _Watched] = {}  # SLURM job id -> its dataset
        self._jobs: dict[str, SlurmJob] = {}  # the last squeue
        self._polled = -1e9  # monotonic time of the last squeue
        self._reaped = -1e9  # the squeue the last reap read (active() may poll in between)
        self._launched: set[str] = set()  # launched since the last squeue
        self._adopted = False

    # -- talking to SLURM --------------------------------------------------------------------
    def _command(self, args: list[str], stdin: str | None = None) -> str:
        try:
            done = self._run(
                args,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT_S,
                check=False,
            )
        except FileNotFoundError as e:
            raise NcaasError(
                f"{args[0]} not found: this machine is not a SLURM submit host",
                hint="run the dispatcher on the cluster's login node, or `make slurm` locally",
            ) from e
        except subprocess.TimeoutExpired as e:
            raise RetryableLaunchError(f"{args[0]} did not answer in {COMMAND_TIMEOUT_S} s") from e
        if done.returncode != 0:
            message = (done.stderr or done.stdout).strip().replace("\n", "; ")
            error = f"{args[0]} failed: {message or f'exit code {done.returncode}'}"
            if any(t in message for t in _TRANSIENT):
                raise RetryableLaunchError(error)
            raise NcaasError(error)
        return done.stdout

    def poll(self, force: bool = False) -> dict[str, SlurmJob]:
        """Every job of ours SLURM knows (live, or ended within MinJobAge): one squeue."""
        if force or time.monotonic() - self._polled >= POLL_SECONDS:
            out = self._command(["squeue", "--me", "--states=all", "-h", "-O", SQUEUE_FORMAT])
            self._jobs = {j: job for j, job in parse_squeue(out).items() if job.identity()}
            self._polled = time.monotonic()
            self._launched.clear()
        return self._jobs

    # -- launching ---------------------------------------------------------------------------
    def launch(self, task: DatasetTask) -> str:
        slurm = task.record.blueprint.slurm
        if slurm.container != "docker":
            raise NcaasError(
                f"slurm.container: {slurm.container} is not supported by this ncaas-dev yet",
                hint="use slurm.container: docker (docs/slurm.md)",
            )
        existing = self._existing(task)
        if existing is not None:  # launched before, by us or a dispatcher before us
            self._live.setdefault(existing, _Watched(task, self.clock()))
            log.info("%s: SLURM job %s already runs it", task.label, existing)
            return f"slurm:{existing}"
        self.output_dir.mkdir(parents=True, exist_ok=True)
        output = str(self.output_dir / f"{job_name(task)}-%j.out")
        try:
            script = batch_script(task, self.python)
            out = self._command(["sbatch", *sbatch_args(task, output)], stdin=script)
        except ValueError as e:
            raise NcaasError(str(e)) from e
        except NcaasError as e:
            raise type(e)(explain_refusal(e.message, task), hint=e.hint) from e
        job_id = out.strip().split(";")[0]
        if not job_id.isdigit():
            raise NcaasError(f"sbatch answered {out.strip()!r}, not a job id")
        self._live[job_id] = _Watched(task, self.clock())
        self._launched.add(job_id)
        log.info("%s: submitted SLURM job %s (%s)", task.label, job_id, job_name(task))
        return f"slurm:{job_id}"

    def _existing(self, task: DatasetTask) -> str | None:
        """A live job of this dataset, by this pass's squeue (no extra call per launch)."""
        ident = (task.bucket, task.group, task.job, task.dataset)
        try:
            jobs = self.poll()
        except NcaasError as e:  # SLURM away: try the launch again later, never fail it now
            raise RetryableLaunchError(e.message) from e
        for job_id, job in jobs.items():
            if job.live and job.identity() == ident:
                return job_id
        return None

    # -- watching ----------------------------------------------------------------------------
    def active(self, analysis: str) -> int:
        """Counted in SLURM (queued or running), not in memory: jobs of an earlier or another
        dispatcher count too; plus those launched since the last squeue."""
        try:
            jobs = self.poll()
        except NcaasError as e:  # SLURM away: no room until it answers again
            log.error("squeue failed: %s", e)
            return sys.maxsize
        counted = {
            job_id
            for job_id, job in jobs.items()
            if job.live and (job.identity() or ("",))[0] == analysis
        }
        recent = {j for j in self._launched if j in self._live}
        return len(counted | {j for j in recent if self._live[j].task.bucket == analysis})

    def watch(self, task: DatasetTask, runner: str, since: float) -> None:
        """Watch a dataset's job the sweep found unfinished, whoever launched it."""
        job_id = runner.removeprefix("slurm:")
        if runner.startswith("slurm:") and job_id.isdigit() and job_id not in self._live:
            self._live[job_id] = _Watched(task, since)

    def _adopt(self) -> None:
        """Once: watch the live jobs of ours SLURM runs, whoever submitted them."""
        self._adopted = True
        records: dict[str, AnalysisRecord | None] = {}
        for job_id, job in self._jobs.items():
            ident = job.identity()
            if not job.live or ident is None or job_id in self._live:
                continue
            bucket, group, job_folder, dataset = ident
            if bucket not in records:
                records[bucket] = load_record(self.storage, bucket)
            record = records[bucket]
            if record is None:
                continue
            task = DatasetTask(
                bucket=bucket,
                group=group,
                job=job_folder,
                dataset=dataset,
                data_key="",
                config_key=None,
                record=record,
                endpoint_url=self.settings.endpoint_url,
                region=self.settings.region,
            )
            self._live[job_id] = _Watched(task, self.clock())
            log.info("%s: adopted SLURM job %s (%s)", task.label, job_id, job.name)

    def reap(self) -> list[Finished]:
        """Jobs of ours that left SLURM's live states, with what their end means."""
        if not self._live and self._adopted:
            return []
        try:
            jobs = self.poll()
        except NcaasError as e:  # the controller is away: nothing is decided meanwhile
            log.error("squeue failed: %s", e)
            return []
        if self._polled == self._reaped and self._adopted:
            return []  # no news from SLURM since the last reap
        self._reaped = self._polled
        if not self._adopted:
            self._adopt()
        ended: list[Finished] = []
        now = self.clock()
        for job_id, watched in list(self._live.items()):
            job = jobs.get(job_id)
            if job is None:
                watched.missing_since = watched.missing_since or now
                if now - max(watched.missing_since, watched.since) < LOST_GRACE_SECONDS:
                    continue
                detail = f"SLURM job {job_id} is no longer known to SLURM"
                ended.append(Finished(watched.task, f"slurm:{job_id}", None, detail))
            elif job.live:
                watched.missing_since = None
                continue
            else:
                state, reason = ended_as(job, watched.task)
                code = int(job.exit_code.split(":")[0]) if job.exit_code[:1].isdigit() else None
                ended.append(Finished(watched.task, f"slurm:{job_id}", code, reason, state))
            del self._live[job_id]
            if job is None or job.state != "COMPLETED":
                # SLURM SIGKILLs a runner that outlives its KillWait (scancel, time limit,
                # node failure; the exit code still reads 0:N): its analysis container would
                # run on. Only a COMPLETED runner removed its own. This Docker is the node's
                # on a one-node cluster; on a real cluster it finds nothing there.
                remove_containers(watched.task)
        return ended

    # -- cancelling --------------------------------------------------------------------------
    def cancel(self, task: DatasetTask, runner: str | None) -> None:
        """scancel the dataset's SLURM job: SLURM sends its runner SIGTERM, the runner stops the
        analysis and uploads what it wrote; SLURM then says CANCELLED (``reap``)."""
        self.scancel(task.bucket, task.group, task.job, task.dataset)

    def scancel(self, bucket: str, group: str, job: str, dataset: str | None = None) -> list[str]:
        """scancel the live SLURM jobs of a job (or of one of its datasets); returns their ids.
        Their runners stop the analysis and upload what it wrote; SLURM then says CANCELLED."""
        ids = [
            job_id
            for job_id, found in self.poll(force=True).items()
            if found.live
            and (found.identity() or ("",))[:3] == (bucket, group, job)
            and (dataset is None or (found.identity() or ("",) * 4)[3] == dataset)
        ]
        if ids:
            self._command(["scancel", *ids])
        return ids

    def shutdown(self) -> None:
        """Jobs run on in SLURM and record their own results; nothing to stop."""
        self._live.clear()


def explain_refusal(message: str, task: DatasetTask) -> str:
    """sbatch's refusal, said in the blueprint's words where it is about one of its fields."""
    slurm = task.record.blueprint.slurm
    lowered = message.lower()
    for field, value in (
        ("partition", slurm.partition),
        ("account", slurm.account),
        ("qos", slurm.qos),
    ):
        if value and f"invalid {field}" in lowered:
            return (
                f"SLURM refused slurm.{field} {value!r} of the blueprint: {message} "
                f"(list the cluster's with `sinfo -s` / `sacctmgr show assoc`; fix "
                f"slurm.{field} and submit again)"
            )
    return message
