"""The AWS Batch launcher: one Batch job per dataset attempt, on spot or on-demand hosts.

Batch holds what the launcher needs to know: each job's name says it is ours (and which
attempt), its environment carries the task, so a restarted dispatcher adopts the jobs of its
queues and the concurrency cap is counted from Batch. The runner's record in S3 is the truth;
Batch's end says only how an attempt ended that recorded nothing: an interruption (the host
reclaimed or lost) is submitted again, up to ``batch.retries`` times, by this launcher, since
the local Batch (moto) retries nothing; the deploy template's retryStrategy does the same
where AWS retries itself. Each attempt is in status.json (``attempts``) and the certificate.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..analysis import AnalysisRecord, load_record
from ..errors import NcaasError, ServiceUnavailable
from ..jobstore import JobStore
from ..settings import Settings
from ..status import JobStatus, State
from ..storage import Storage
from .base import DatasetTask, Finished, RetryableLaunchError
from .batchenv import BatchResources, spot_price
from .batchjob import (
    CANCEL_REASON,
    ENDED_STATES,
    NAME_PREFIX,
    TASK_ENV,
    attempt_of,
    attempt_seconds,
    container_overrides,
    given_up,
    job_name,
    name_pattern,
    queue_name,
    read_end,
)
from .docker import remove_containers

log = logging.getLogger(__name__)
# ListJobs at most this often per queue: a pass comes every 0.2-1 s.
POLL_SECONDS = float(os.environ.get("NCAAS_BATCH_POLL_SECONDS", "1"))
# A job Batch does not list (any more) is lost only after this long (ListJobs is eventually
# consistent on AWS right after SubmitJob).
LOST_GRACE_SECONDS = float(os.environ.get("NCAAS_BATCH_LOST_GRACE_SECONDS", "120"))
_THROTTLED = ("Throttling", "TooManyRequests", "ServerException", "RequestLimitExceeded")


@dataclass
class _Watched:
    task: DatasetTask
    attempt: int
    since: float
    missing_since: float | None = None


@dataclass
class BatchLauncher:
    settings: Settings
    storage: Storage
    batch: Any = None
    iam: Any = None
    clock: Callable[[], float] = time.time
    name: str = "batch"
    # A job may wait in Batch's queue for long: the dispatcher records its id at once.
    runner_announces_itself: bool = False
    _live: dict[str, _Watched] = field(default_factory=dict)  # Batch job id -> its attempt
    _done: set[str] = field(default_factory=set)  # ended and settled: never watched again
    _queues: set[str] = field(default_factory=set)
    _listing: dict[str, dict[str, Any]] = field(default_factory=dict)  # the last ListJobs
    _polled: float = -1e9
    _adopted: bool = False

    def __post_init__(self) -> None:
        if self.batch is None or self.iam is None:
            self.batch, self.iam = batch_clients(self.settings)
        self.resources = BatchResources(self.batch, self.iam, self.settings)

    # -- launching ---------------------------------------------------------------------------
    def launch(self, task: DatasetTask) -> str:
        # The job container binds it: Docker refuses a bind whose host folder is missing.
        self.settings.jobs_dir.mkdir(parents=True, exist_ok=True)
        queue, _ = self._ensure(task)
        existing = self._existing(task, queue)
        if existing is not None:  # submitted before, by us or a dispatcher before us
            job_id, attempt = existing
            self._live.setdefault(job_id, _Watched(task, attempt, self.clock()))
            log.info("%s: Batch job %s already runs it", task.label, job_id)
            return f"batch:{job_id}"
        job_id = self._submit(task, queue, 1)
        compute = self._call(self.resources.compute_environment, queue)
        charge = self._spot_price(task)

        def record(status: JobStatus) -> None:
            ds = status.datasets[task.dataset]
            extra = ds.__pydantic_extra__ if ds.__pydantic_extra__ is not None else {}
            extra.update(attempts=1, batch_jobs=[job_id])
            status.provenance.setdefault(
                "batch", {"job_queue": queue, "compute_environment": compute}
            )
            if charge is not None:
                status.provenance.setdefault("charge_usd_per_hour", charge)

        JobStore(self.storage, task.bucket).update(task.group, task.job, record)
        return f"batch:{job_id}"

    def _spot_price(self, task: DatasetTask) -> float | None:
        """AWS's spot price of the dataset's type (on AWS, on spot); locally none is known."""
        if self.settings.local or not task.record.blueprint.batch.spot:
            return None
        from ..aws import ec2_client

        return spot_price(ec2_client(self.settings), task.cloud_instance_type)

    def _ensure(self, task: DatasetTask) -> tuple[str, str]:
        queue, definition = self._call(self.resources.ensure, task)
        self._queues.add(queue)
        return queue, definition

    def _submit(self, task: DatasetTask, queue: str, attempt: int) -> str:
        _, definition = self._ensure(task)
        answer = self._call(
            self.batch.submit_job,
            jobName=job_name(task, attempt),
            jobQueue=queue,
            jobDefinition=definition,
            containerOverrides=container_overrides(task, attempt),
            timeout={"attemptDurationSeconds": attempt_seconds(task)},
            tags={"ncaas:analysis": task.record.blueprint.analysis, "ncaas:attempt": str(attempt)},
        )
        job_id = str(answer["jobId"])
        self._live[job_id] = _Watched(task, attempt, self.clock())
        self._polled = -1e9  # the next count asks Batch again
        log.info("%s: attempt %d is Batch job %s", task.label, attempt, job_id)
        return job_id

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A Batch call; throttling and an unreachable endpoint may pass, anything else fails."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(*args, **kwargs)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            message = f"AWS Batch refused: {e}"
            if code in _THROTTLED:
                raise RetryableLaunchError(message) from e
            raise NcaasError(message) from e
        except BotoCoreError as e:  # the endpoint away (the local server restarting)
            raise RetryableLaunchError(f"AWS Batch did not answer: {e}") from e

    def _existing(self, task: DatasetTask, queue: str) -> tuple[str, int] | None:
        """The newest live attempt of this dataset Batch knows (one ListJobs by name)."""
        found = self._call(
            self.batch.list_jobs,
            jobQueue=queue,
            filters=[{"name": "JOB_NAME", "values": [name_pattern(task)]}],
        ).get("jobSummaryList", [])
        live = [j for j in found if j.get("status") not in ENDED_STATES]
        if not live:
            return None
        newest = max(live, key=lambda j: attempt_of(str(j["jobName"])))
        return str(newest["jobId"]), attempt_of(str(newest["jobName"]))

    # -- watching ----------------------------------------------------------------------------
    def poll(self, force: bool = False) -> dict[str, dict[str, Any]]:
        """Every job of ours in the queues we use, live or ended: one ListJobs per queue."""
        if not force and time.monotonic() - self._polled < POLL_SECONDS:
            return self._listing
        listing: dict[str, dict[str, Any]] = {}
        for queue in sorted(self._queues):
            try:
                listing.update(self._list(queue))
            except RetryableLaunchError:
                raise  # Batch away: nothing is known this pass
            except NcaasError as e:  # that queue gone: its jobs become lost after the grace
                log.error("could not list Batch queue %s: %s", queue, e)
        self._listing, self._polled = listing, time.monotonic()
        return listing

    def _list(self, queue: str) -> dict[str, dict[str, Any]]:
        listing: dict[str, dict[str, Any]] = {}
        token: str | None = None
        while True:
            page = self._call(
                self.batch.list_jobs,
                jobQueue=queue,
                filters=[{"name": "JOB_NAME", "values": [f"{NAME_PREFIX}*"]}],
                **({"nextToken": token} if token else {}),
            )
            for summary in page.get("jobSummaryList", []):
                listing[str(summary["jobId"])] = summary
            token = page.get("nextToken")
            if not token:
                return listing

    def active(self, analysis: str) -> int:
        """Attempts of ``analysis`` not settled yet: counted from Batch after adoption, so jobs
        an earlier dispatcher submitted count too."""
        if not self._adopted:
            try:
                self._adopt()
            except NcaasError as e:  # Batch away: no room until it answers again
                log.error("could not list Batch jobs: %s", e)
                return 1 << 30
        return sum(1 for w in self._live.values() if w.task.bucket == analysis)

    def watch(self, task: DatasetTask, runner: str, since: float) -> None:
        """Watch a dataset's job the sweep found unfinished, whoever submitted it."""
        job_id = runner.removeprefix("batch:")
        known = job_id in self._live or job_id in self._done or job_id == "starting"
        if runner.startswith("batch:") and not known:
            self._live[job_id] = _Watched(task, 0, since)
            self._queues.add(queue_name(task))

    def _adopt(self) -> None:
        """Once: watch the newest attempt of each dataset in every ncaas queue Batch has."""
        queues = self._call(self.batch.describe_job_queues).get("jobQueues", [])
        self._queues.update(
            str(q["jobQueueName"]) for q in queues if str(q["jobQueueName"]).startswith(NAME_PREFIX)
        )
        newest: dict[str, dict[str, Any]] = {}
        for job_id, summary in self.poll(force=True).items():
            prefix = str(summary["jobName"]).rsplit("-a", 1)[0]
            if job_id in self._live or job_id in self._done:
                continue
            if prefix not in newest or attempt_of(str(summary["jobName"])) > attempt_of(
                str(newest[prefix]["jobName"])
            ):
                newest[prefix] = summary
        ids = [str(s["jobId"]) for s in newest.values()]
        records: dict[str, AnalysisRecord | None] = {}
        for start in range(0, len(ids), 100):
            described = self._call(self.batch.describe_jobs, jobs=ids[start : start + 100])
            for job in described.get("jobs", []):
                task = self._task_of(job, records)
                if task is None or self._settled(task):
                    self._done.add(str(job["jobId"]))
                    continue
                attempt = attempt_of(str(job["jobName"]))
                self._live[str(job["jobId"])] = _Watched(task, attempt, self.clock())
                log.info("%s: adopted Batch job %s (attempt %d)", task.label, job["jobId"], attempt)
        self._adopted = True

    def _task_of(
        self, job: dict[str, Any], records: dict[str, AnalysisRecord | None]
    ) -> DatasetTask | None:
        env = {e["name"]: e["value"] for e in (job.get("container") or {}).get("environment", [])}
        try:
            task = DatasetTask.model_validate_json(env[TASK_ENV])
        except (KeyError, ValueError):
            return None
        if task.bucket not in records:  # the analysis as provisioned now (or gone)
            records[task.bucket] = load_record(self.storage, task.bucket)
        return task if records[task.bucket] is not None else None

    def _settled(self, task: DatasetTask) -> bool:
        try:
            status = JobStore(self.storage, task.bucket).read(task.group, task.job)
            return status.datasets[task.dataset].state.terminal
        except (NcaasError, KeyError):
            return True

    def reap(self) -> list[Finished]:
        """Attempts that ended: settled by the runner's record, retried after an interruption,
        or ended as Batch says when the runner recorded nothing."""
        try:
            if not self._adopted:
                self._adopt()
            listing = self.poll()
        except NcaasError as e:  # Batch away: nothing is decided meanwhile
            log.error("could not list Batch jobs: %s", e)
            return []
        ended: list[Finished] = []
        now = self.clock()
        for job_id, watched in list(self._live.items()):
            summary = listing.get(job_id)
            if summary is None:
                watched.missing_since = watched.missing_since or now
                if now - max(watched.missing_since, watched.since) < LOST_GRACE_SECONDS:
                    continue
                summary = {"jobId": job_id, "jobName": "", "status": "FAILED"}
                summary["statusReason"] = "Host EC2: Batch no longer knows the job"
            elif summary.get("status") not in ENDED_STATES:
                watched.missing_since = None
                continue
            del self._live[job_id]
            self._done.add(job_id)
            watched.attempt = watched.attempt or attempt_of(str(summary.get("jobName", "")))
            finished = self._ended(job_id, watched, summary)
            if finished is not None:
                ended.append(finished)
        return ended

    def _ended(self, job_id: str, watched: _Watched, summary: dict[str, Any]) -> Finished | None:
        task, runner = watched.task, f"batch:{job_id}"
        code = (summary.get("container") or {}).get("exitCode")
        if summary.get("status") != "SUCCEEDED":
            # A runner stopped from outside leaves its analysis container running on the host.
            remove_containers(task)
        if self._settled(task):
            return Finished(task, runner, code, f"Batch job {job_id} ended {summary['status']}")
        end = read_end(summary, task)
        if end.state is not None:
            return Finished(task, runner, code, end.reason, end.state)
        return self._interrupted(job_id, watched, end.reason)

    def _interrupted(self, job_id: str, watched: _Watched, why: str) -> Finished | None:
        """Record the interruption; submit the next attempt while attempts remain."""
        task = watched.task
        allowed = task.record.blueprint.batch.retries + 1
        store = JobStore(self.storage, task.bucket)
        seen: list[str] = []

        def note(status: JobStatus) -> None:
            ds = status.datasets[task.dataset]
            extra = ds.__pydantic_extra__ if ds.__pydantic_extra__ is not None else {}
            before = [str(x) for x in extra.get("interruptions", [])]
            # Each reason names its Batch job: one adopted twice is noted once.
            seen[:] = before if why in before else [*before, why]
            extra["interruptions"] = list(seen)
            status.log(f"{task.dataset}: attempt {watched.attempt} of {allowed} interrupted: {why}")

        store.update(task.group, task.job, note)
        # On AWS the job definition's retryStrategy retried it within the job: Batch gave up.
        if watched.attempt >= allowed or not self.settings.local:
            return Finished(task, f"batch:{job_id}", None, given_up(allowed, seen), State.FAILED)
        queue, _ = self._ensure(task)
        try:
            next_id = self._submit(task, queue, watched.attempt + 1)
        except NcaasError as e:
            reason = f"infrastructure error: attempt {watched.attempt + 1} could not start: {e}"
            return Finished(task, f"batch:{job_id}", None, reason, State.FAILED)
        attempt = watched.attempt + 1

        def again(status: JobStatus) -> None:
            ds = status.datasets[task.dataset]
            extra = ds.__pydantic_extra__ if ds.__pydantic_extra__ is not None else {}
            extra["attempts"] = attempt
            extra["batch_jobs"] = [*extra.get("batch_jobs", []), next_id]
            if not ds.state.terminal:
                ds.runner = f"batch:{next_id}"
            status.log(f"{task.dataset}: attempt {attempt} of {allowed} is Batch job {next_id}")

        store.update(task.group, task.job, again)
        return None

    # -- cancelling --------------------------------------------------------------------------
    def cancel(self, task: DatasetTask, runner: str | None) -> None:
        """TerminateJob on the dataset's live attempt (a cancel request); reap then ends it
        cancelled unless its runner recorded an ending first."""
        self.terminate(task.bucket, task.group, task.job, task.dataset)

    def terminate(self, bucket: str, group: str, job: str, dataset: str | None = None) -> list[str]:
        """TerminateJob on the live attempts of a job (or of one of its datasets); returns
        their ids. Reap then ends their datasets cancelled unless the runner recorded one."""
        if not self._adopted:  # a dispatcher (or a Lambda) that did not submit them
            self._adopt()
        ids = [
            job_id
            for job_id, w in self._live.items()
            if (w.task.bucket, w.task.group, w.task.job) == (bucket, group, job)
            and (dataset is None or w.task.dataset == dataset)
        ]
        reason = f"{CANCEL_REASON} by a {group} cancel request for {job}"
        for job_id in ids:
            self._call(self.batch.terminate_job, jobId=job_id, reason=reason)
        return ids

    def shutdown(self) -> None:
        """Jobs run on in Batch and record their own results; nothing to stop."""
        self._live.clear()


def batch_clients(settings: Settings) -> tuple[Any, Any]:
    """Batch and IAM clients: the local Batch server's (moto) beside LocalStack, or AWS's."""
    from ..aws import client

    if not settings.local:
        return client(settings, "batch"), client(settings, "iam")
    from ..local.batchserver import batch_endpoint

    endpoint = batch_endpoint(settings.state_dir)
    if endpoint is None:
        raise ServiceUnavailable(
            "the local Batch server is not running",
            hint="start the stack with `ncaas-dev up --launcher batch`",
        )
    local = Settings(endpoint, settings.region, settings.state_dir, settings.analysis_network)
    return client(local, "batch"), client(local, "iam")
