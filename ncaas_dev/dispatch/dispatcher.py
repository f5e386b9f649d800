"""The dispatcher: S3 submission events in, job folders and launched datasets out.

The same core serves the local SQS loop and an AWS Lambda handler; only the launcher differs.
It composes the parts in ``dispatch/``: admission (validate, budget, job folder), scheduling
(queue, cap, launch, settle) and the sweep (recovery). An event source needs only
:meth:`Dispatcher.handle` (or :meth:`~Dispatcher.handle_many`) and :meth:`~Dispatcher.pump`.

Nothing it accepted depends on its memory alone: claims (of submissions and of datasets)
record who made them and when, and a sweep (at start, then every ``sweep_interval`` seconds)
finds work no live dispatcher owns.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..analysis import AnalysisRecord
from ..errors import NcaasError
from ..events import ObjectCreated
from ..launchers.base import DatasetTask, Launcher
from ..layout import is_cancel_key
from ..status import JobStatus
from ..storage import Storage
from .admission import Admission, Admitted, Outcome
from .cancel import Canceller
from .claims import dispatcher_identity
from .scheduler import Scheduler
from .sweep import Sweeper

__all__ = ["Dispatcher", "Outcome"]
log = logging.getLogger(__name__)


def _env_float(name: str, default: str) -> float:
    return float(os.environ.get(name, default))


@dataclass
class Dispatcher:
    storage: Storage
    launcher: Launcher
    endpoint_url: str | None
    region: str
    owner: str = field(default_factory=dispatcher_identity)
    sweep_interval: float = field(default_factory=lambda: _env_float("NCAAS_SWEEP_SECONDS", "10"))
    # Admissions of one batch run in parallel: each waits mostly on S3 round-trips.
    admission_workers: int = field(
        default_factory=lambda: int(_env_float("NCAAS_ADMISSION_WORKERS", "8"))
    )
    _last_sweep: float = -1e9
    _sweeping: bool = False
    _pool: ThreadPoolExecutor | None = None

    def __post_init__(self) -> None:
        self.admission = Admission(self.storage, self.launcher.name, self.owner)
        self.scheduler = Scheduler(
            self.storage, self.launcher, self.endpoint_url, self.region, self.owner
        )
        self.canceller = Canceller(self.storage, self.launcher, self.scheduler.task)
        self.sweeper = Sweeper(self.storage, self._admit_one, self._sweep_open_job)

    @property
    def pending(self) -> deque[DatasetTask]:
        """Datasets admitted and waiting for a free slot."""
        return self.scheduler.pending

    # -- events ------------------------------------------------------------------------------
    def handle(self, event: ObjectCreated) -> Outcome:
        """Handle one event; a failure here is logged, never raised into the loop."""
        outcome = self._admit_one(event)
        self.pump()
        return outcome

    def handle_many(self, events: Sequence[ObjectCreated]) -> list[Outcome]:
        """Cancel requests first (they stop work), then admit the rest of the batch in
        parallel, queue what was accepted in order, then launch. Outcomes in event order."""
        cancels = {
            i: self.canceller.handle(e) for i, e in enumerate(events) if is_cancel_key(e.key)
        }
        submissions = [e for i, e in enumerate(events) if i not in cancels]
        if len(submissions) <= 1 or self.admission_workers <= 1:
            admitted_outcomes = [self._admit_one(e) for e in submissions]
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.admission_workers, "ncaas-admission")
            received = time.monotonic()
            admitted = list(
                self._pool.map(lambda e: self.admission.admit(e, received), submissions)
            )
            admitted_outcomes = [self._accept(a) for a in admitted]
        rest = iter(admitted_outcomes)
        outcomes = [cancels[i] if i in cancels else next(rest) for i in range(len(events))]
        self.pump()
        return outcomes

    def _admit_one(self, event: ObjectCreated) -> Outcome:
        if is_cancel_key(event.key):
            return self.canceller.handle(event)
        return self._accept(self.admission.admit(event))

    def _accept(self, admitted: Admitted) -> Outcome:
        if admitted.status is not None and admitted.record is not None:
            self.scheduler.queue_waiting(admitted.bucket, admitted.record, admitted.status)
        return admitted.outcome

    def _sweep_open_job(self, bucket: str, record: AnalysisRecord, status: JobStatus) -> int:
        """The sweep's look at an open job: queue what waits, stop again what a cancel request
        marked and still runs (its stop was lost with a dead dispatcher)."""
        self.canceller.resume(bucket, record, status)
        return self.scheduler.queue_waiting(bucket, record, status)

    # -- scheduling --------------------------------------------------------------------------
    def pump(self) -> None:
        """Reap ended runners, sweep now and then, launch queued datasets while there is room."""
        self.scheduler.reap()
        if not self._sweeping and time.monotonic() - self._last_sweep >= self.sweep_interval:
            try:
                self.sweep()
            except NcaasError as e:
                log.error("sweep failed: %s", e)
        self.scheduler.launch_ready()

    # -- recovery ----------------------------------------------------------------------------
    def recover(self) -> int:
        """The sweep a starting dispatcher runs (every submission listed): returns how many
        datasets it queued."""
        return self.sweep(full_listing=True)

    def sweep(self, full_listing: bool = False) -> int:
        """Find the work no live dispatcher owns; returns how many datasets it queued."""
        self._sweeping = True
        try:
            queued = self.sweeper.sweep(full_listing)
        finally:
            self._sweeping = False
            self._last_sweep = time.monotonic()  # the interval runs between sweeps
        self.scheduler.reap()  # runners found dead on adoption
        return queued
