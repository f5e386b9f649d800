"""Scheduling: queued datasets wait for a slot under the analysis's cap, then launch.

The scheduler owns the in-memory queue of datasets to launch. Each launch is claimed in the
job's status.json first (a conditional write), so of several dispatchers only one launches a
dataset. Runners that end without recording a result leave their dataset ``failed``.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..analysis import AnalysisRecord
from ..errors import NcaasError
from ..jobstore import JobStore
from ..launchers.base import DatasetTask, Finished, Launcher, RetryableLaunchError
from ..pricing import parse_time
from ..status import DatasetStatus, JobStatus, State, cancel_mark, utcnow
from ..storage import Storage
from .claims import claim_is_stale

log = logging.getLogger(__name__)
TaskKey = tuple[str, str, str, str]
# A launch that may succeed later (no capacity, a quota) is retried this long, then failed.
LAUNCH_RETRY_SECONDS = float(os.environ.get("NCAAS_LAUNCH_RETRY_SECONDS", "1800"))
RETRY_BACKOFF_S = (15.0, 300.0)  # first wait, longest wait (doubling in between)


def _task_key(task: DatasetTask) -> TaskKey:
    return (task.bucket, task.group, task.job, task.dataset)


@dataclass
class Scheduler:
    storage: Storage
    launcher: Launcher
    endpoint_url: str | None
    region: str
    owner: str
    pending: deque[DatasetTask] = field(default_factory=deque)
    clock: Callable[[], float] = time.time
    retry_seconds: float = LAUNCH_RETRY_SECONDS
    _queued: set[TaskKey] = field(default_factory=set)
    _not_before: dict[TaskKey, float] = field(default_factory=dict)  # backoff of retries

    def queue_waiting(self, bucket: str, record: AnalysisRecord, status: JobStatus) -> int:
        """Queue the job's datasets nobody launched (or whose launcher died while claiming)."""
        store = JobStore(self.storage, bucket)
        found = 0
        watch = getattr(self.launcher, "watch", None)  # launchers that can watch by id (EC2)
        for name, ds in status.datasets.items():
            if ds.state.terminal:
                continue
            if watch is not None and ds.runner and (ds.claimed_at or ds.started):
                since = parse_time(ds.claimed_at or ds.started or "").timestamp()
                watch(self.task(bucket, record, status, name), ds.runner, since)
            if ds.state != State.QUEUED:
                continue
            if ds.runner is not None:
                if not claim_is_stale(ds.claimed_by, ds.claimed_at):
                    continue
                if not self._release_launch_claim(store, status, name, ds):
                    continue
            found += self._queue(self.task(bucket, record, status, name))
        return found

    def task(
        self, bucket: str, record: AnalysisRecord, status: JobStatus, name: str
    ) -> DatasetTask:
        ds = status.datasets[name]
        return DatasetTask(
            bucket=bucket,
            group=status.group,
            job=status.job,
            dataset=name,
            data_key=ds.key,
            config_key=status.configname,
            record=record,
            endpoint_url=self.endpoint_url,
            region=self.region,
            instance_type=status.provenance.get("instance_type"),
            timeout=status.provenance.get("timeout_seconds"),
        )

    def _queue(self, task: DatasetTask) -> bool:
        key = _task_key(task)
        if key in self._queued:
            return False
        self._queued.add(key)
        self.pending.append(task)
        return True

    def _release_launch_claim(
        self, store: JobStore, status: JobStatus, name: str, seen: DatasetStatus
    ) -> bool:
        """Undo a launch claim whose dispatcher died before launching (only if unchanged)."""
        released = False

        def release(current: JobStatus) -> None:
            nonlocal released
            ds = current.datasets[name]
            if (ds.state, ds.runner, ds.claimed_by, ds.claimed_at) != (
                State.QUEUED,
                seen.runner,
                seen.claimed_by,
                seen.claimed_at,
            ):
                return
            ds.runner = ds.claimed_by = ds.claimed_at = None
            current.log(f"{name}: launch claim of {seen.claimed_by} abandoned; queued again")
            released = True

        store.update(status.group, status.job, release)
        return released

    def reap(self) -> None:
        """Record the end of runners that ended without recording a result."""
        for finished in self.launcher.reap():
            self.settle_runner(finished)

    def launch_ready(self) -> None:
        """Launch queued datasets while their analysis has a free slot."""
        waiting: deque[DatasetTask] = deque()
        room: dict[str, int] = {}  # asked once per analysis per pass: a cloud launcher's
        while self.pending:  # count is an API call
            task = self.pending.popleft()
            if self._not_before.get(_task_key(task), 0.0) > self.clock():
                waiting.append(task)
                continue
            if task.bucket not in room:
                cap = task.record.blueprint.limits.max_concurrent_jobs
                room[task.bucket] = cap - self.launcher.active(task.bucket)
            if room[task.bucket] <= 0:
                waiting.append(task)
                continue
            room[task.bucket] -= 1
            self._queued.discard(_task_key(task))
            try:
                self._launch(task)
            except NcaasError as e:  # its status stays queued: a later sweep finds it again
                log.error("%s: launch failed: %s", task.label, e)
        self.pending = waiting

    def _launch(self, task: DatasetTask) -> None:
        """Claim the dataset in status.json, then start its runner: only one launch can win."""
        store = JobStore(self.storage, task.bucket)
        claimed = False
        starting = f"{self.launcher.name}:starting"

        def claim(status: JobStatus) -> None:
            nonlocal claimed
            ds = status.datasets[task.dataset]
            claimed = ds.state == State.QUEUED and ds.runner is None
            if claimed:
                ds.runner, ds.reason = starting, None
                ds.claimed_by, ds.claimed_at = self.owner, utcnow()

        # A runner that announces itself publishes certificate.txt milliseconds from now.
        announced = self.launcher.runner_announces_itself
        store.update(task.group, task.job, claim, publish=not announced)
        if not claimed:
            return
        try:
            runner = self.launcher.launch(task)
        except RetryableLaunchError as e:
            self._retry_later(store, task, starting, str(e))
            return
        except NcaasError as e:
            reason = f"infrastructure error: could not start a runner: {e}"

            def failed(status: JobStatus) -> None:
                ds = status.datasets[task.dataset]
                ds.state, ds.reason, ds.finished = State.FAILED, reason, utcnow()
                status.log(f"{task.dataset}: {reason}")

            store.update(task.group, task.job, failed)
            return
        if self.launcher.runner_announces_itself:
            return  # its first write names it, milliseconds from now: no second write here

        def launched(status: JobStatus) -> None:
            ds = status.datasets[task.dataset]
            if ds.runner == starting:
                ds.runner = runner
            status.log(f"{task.dataset}: launched on {runner}")

        store.update(task.group, task.job, launched)

    def _retry_later(self, store: JobStore, task: DatasetTask, starting: str, error: str) -> None:
        """Leave the dataset queued with the reason (the certificate shows it) and retry with
        backoff; past ``retry_seconds`` since the first refusal, fail it with the last error.
        The first refusal's time is in status.json, so the bound holds across dispatchers."""
        now = self.clock()
        attempts = 0
        # Who refused: EC2 (an AWS error) or SLURM (sbatch, squeue).
        where, source = ("SLURM", "SLURM") if self.launcher.name == "slurm" else ("EC2", "AWS")

        def retry(status: JobStatus) -> None:
            nonlocal attempts
            ds = status.datasets[task.dataset]
            if ds.state != State.QUEUED or ds.runner != starting:
                return
            extra = ds.__pydantic_extra__ if ds.__pydantic_extra__ is not None else {}
            since = str(extra.get("launch_refused_since") or _stamp(now))
            attempts = int(extra.get("launch_attempts") or 0) + 1
            waited = now - parse_time(since).timestamp()
            if waited >= self.retry_seconds:
                ds.state, ds.finished = State.FAILED, _stamp(now)
                ds.reason = (
                    f"infrastructure error: could not start a runner in {waited / 60:.0f} min "
                    f"({attempts} attempts); last {source} error: {error}"
                )
                status.log(f"{task.dataset}: {ds.reason}")
                return
            ds.runner = ds.claimed_by = ds.claimed_at = None
            extra.update(launch_refused_since=since, launch_attempts=attempts)
            until = _stamp(parse_time(since).timestamp() + self.retry_seconds)
            ds.reason = f"waiting for {where}, retrying until {until}: {error}"
            status.log(f"{task.dataset}: launch refused (attempt {attempts}), retrying: {error}")

        current = store.update(task.group, task.job, retry).datasets[task.dataset]
        if attempts and current.state == State.QUEUED:
            first, longest = RETRY_BACKOFF_S
            self._not_before[_task_key(task)] = now + min(longest, first * 2 ** (attempts - 1))
            self._queue(task)

    def settle_runner(self, finished: Finished) -> None:
        """A runner that died without reporting leaves its dataset failed, never running."""
        task = finished.task
        store = JobStore(self.storage, task.bucket)

        def lost(status: JobStatus) -> None:
            ds = status.datasets[task.dataset]
            if ds.state.terminal:
                return
            ds.state, ds.finished = finished.state or State.FAILED, utcnow()
            ds.reason = (
                f"runner lost: {finished.detail} before recording a result "
                "(infrastructure error; submit the dataset again)"
            )
            if finished.state is not None:  # the launcher knows how it ended (e.g. SLURM)
                ds.reason = finished.detail
            if cancel_mark(ds):  # stopped by a cancel request: that is how it ended
                ds.state, ds.reason = State.CANCELLED, cancel_mark(ds)
            status.log(f"{task.dataset}: runner {finished.runner} ended without a result")

        try:
            if not store.read(task.group, task.job).datasets[task.dataset].state.terminal:
                store.update(task.group, task.job, lost)
        except NcaasError as e:
            log.error(
                "%s: could not record the end of runner %s: %s", task.label, finished.runner, e
            )


def _stamp(epoch: float) -> str:
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )
