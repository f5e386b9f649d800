"""Per-group spending: a ledger object per group, updated with conditional writes.

``s3://{analysis}/.ncaas/ledger/{group}.json`` records what each finished dataset cost
(``charges``) and what accepted, unfinished datasets may still cost (``reserved``), both keyed
``{job}/{dataset}`` so recording twice changes nothing. A submission is refused when what the
group has spent, plus what is reserved, plus its own projection would pass
``limits.max_cost_usd``. Like status.json, every change is read-modify-write with If-Match
(If-None-Match for the first), retried on conflict, so dispatchers and runners on any number
of machines can share one ledger.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, Field

from .errors import NcaasError
from .lastseen import LastSeen
from .layout import INTERNAL_PREFIX
from .pricing import billed_seconds, run_cost, runtime_seconds
from .status import JobStatus, utcnow
from .storage import NotFound, PreconditionFailed, Storage

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 50
# A reservation whose job folder never appeared (its dispatcher died before creating it).
ORPHAN_RESERVATION_SECONDS = 600
# Ledgers this process last wrote: a dispatcher admitting one group's submissions is mostly
# alone on its ledger, so the next reservation is written without reading it first.
_last_seen = LastSeen(64)


def ledger_key(group: str) -> str:
    return f"{INTERNAL_PREFIX}/ledger/{group}.json"


class Reservation(BaseModel):
    usd: float
    at: str = Field(default_factory=utcnow)
    submission: str | None = None


class ReservationClash(Exception):
    """Another submission reserved under the same job name: pick another name and retry."""


class Ledger(BaseModel):
    group: str
    spent_usd: float = 0.0
    reserved_usd: float = 0.0
    charges: dict[str, float] = Field(default_factory=dict)
    reserved: dict[str, Reservation] = Field(default_factory=dict)
    updated: str = Field(default_factory=utcnow)

    def total(self) -> None:
        self.spent_usd = round(sum(self.charges.values()), 4)
        self.reserved_usd = round(sum(r.usd for r in self.reserved.values()), 4)
        self.updated = utcnow()


@dataclass(frozen=True)
class Projection:
    """What a submission may cost at most: every dataset running until ``run.timeout``."""

    datasets: int
    instance_type: str
    price_per_hour: float
    timeout_seconds: int

    @property
    def per_dataset(self) -> float:
        return run_cost(self.price_per_hour, self.timeout_seconds)

    @property
    def usd(self) -> float:
        return round(self.datasets * self.per_dataset, 4)

    def describe(self) -> str:
        billed = billed_seconds(self.timeout_seconds)
        return (
            f"{self.datasets} dataset(s) x {self.instance_type} at ${self.price_per_hour}/h "
            f"x run.timeout {self.timeout_seconds} s (billed {billed} s)"
        )


def refusal(spent: float, reserved: float, projection: Projection, limit: float) -> str | None:
    """Why a submission must be refused for budget, or None if it fits (pure)."""
    if spent + reserved + projection.usd <= limit + 1e-9:
        return None
    running = f" plus ${reserved:.4f} reserved by its unfinished jobs" if reserved else ""
    return (
        f"budget exceeded: group has spent ${spent:.4f}{running}; this submission could cost "
        f"up to ${projection.usd:.4f} ({projection.describe()}), which would pass the limit of "
        f"${limit:.2f} (limits.max_cost_usd); submit fewer datasets, or ask the analysis's "
        "developer to raise the limit or lower run.timeout"
    )


@dataclass(frozen=True)
class ReservationRequest:
    job: str
    datasets: list[str]
    projection: Projection
    limit: float
    submission: str | None = None


def _reserve_in(ledger: Ledger, request: ReservationRequest) -> str | None:
    """Reserve in ``ledger`` (in memory), or return why not; raises on a job-name clash."""
    keys = [f"{request.job}/{name}" for name in request.datasets]
    for key in keys:
        held = ledger.reserved.get(key)
        if held is not None and held.submission != request.submission:
            raise ReservationClash(key)
    # Setting, not adding: a dispatcher taking over a half-done submission reserves the same
    # keys again without counting them twice.
    others = sum(r.usd for k, r in ledger.reserved.items() if k not in keys)
    problem = refusal(ledger.spent_usd, others, request.projection, request.limit)
    if problem is None:
        for key in keys:
            ledger.reserved[key] = Reservation(
                usd=request.projection.per_dataset, submission=request.submission
            )
    return problem


class Budget:
    def __init__(self, storage: Storage, bucket: str) -> None:
        self.storage = storage
        self.bucket = bucket

    def read(self, group: str) -> Ledger:
        try:
            doc, _ = self.storage.get_json(self.bucket, ledger_key(group))
        except NotFound:
            return Ledger(group=group)
        return Ledger.model_validate(doc)

    def _update(
        self,
        group: str,
        change: Callable[[Ledger], bool],
        refused: Callable[[], bool] = lambda: False,
    ) -> Ledger:
        """Apply ``change`` (which returns False to write nothing) without losing an update.
        ``refused()``: whether writing nothing was a budget refusal, which is never made on a
        remembered copy of the ledger (a charge since would have made room)."""
        key = ledger_key(group)
        for attempt in range(MAX_ATTEMPTS):
            etag: str | None
            seen = _last_seen.get(self.bucket, key) if attempt == 0 else None
            try:
                doc, etag = seen or self.storage.get_json(self.bucket, key)
                ledger = Ledger.model_validate(doc)
            except NotFound:
                ledger, etag = Ledger(group=group), None
            if not change(ledger):
                if seen is not None and refused():  # judge it on the ledger as it is now
                    continue
                return ledger
            ledger.total()
            body = ledger.model_dump(mode="json")
            try:
                if etag is None:
                    etag = self.storage.put_json(self.bucket, key, body, if_none_match=True)
                else:
                    etag = self.storage.put_json(self.bucket, key, body, if_match=etag)
            except (PreconditionFailed, NotFound) as e:  # NotFound: the ledger is gone
                _last_seen.forget(self.bucket, key)
                if isinstance(e, NotFound) and seen is None:
                    raise
                if seen is None:  # a real conflict, not just an old copy: back off
                    time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
                continue
            _last_seen.put(self.bucket, key, body, etag)
            return ledger
        raise PreconditionFailed(f"ledger of {group}: gave up after {MAX_ATTEMPTS} conflicts")

    def reserve(
        self,
        group: str,
        job: str,
        datasets: list[str],
        projection: Projection,
        limit: float,
        submission: str | None = None,
    ) -> str | None:
        """Reserve the projection for ``job``'s datasets, or say why it does not fit.

        Raises ``ReservationClash`` if another submission holds a reservation under this job
        name (two dispatchers picked the same name in the same second).
        """
        (answer,) = self.reserve_many(
            group, [ReservationRequest(job, datasets, projection, limit, submission)]
        )
        if isinstance(answer, ReservationClash):
            raise answer
        return answer

    def reserve_many(
        self, group: str, requests: list[ReservationRequest]
    ) -> list[str | ReservationClash | None]:
        """Several reservations in one conditional write, each judged after the ones before it.

        Each answer is None (reserved), the refusal, or the ``ReservationClash`` to raise.
        """
        answers: list[str | ReservationClash | None] = []

        def change(ledger: Ledger) -> bool:
            answers.clear()  # a retry after a conflict judges every request again
            for request in requests:
                try:
                    answers.append(_reserve_in(ledger, request))
                except ReservationClash as clash:
                    answers.append(clash)
            return any(answer is None for answer in answers)

        self._update(group, change, lambda: any(isinstance(a, str) for a in answers))
        return answers

    def charge(self, group: str, job: str, costs: dict[str, float]) -> None:
        """Record what finished datasets cost and release their reservations (idempotent)."""

        def change(ledger: Ledger) -> bool:
            changed = False
            for name, usd in costs.items():
                key = f"{job}/{name}"
                if ledger.charges.get(key) != usd or key in ledger.reserved:
                    ledger.charges[key] = usd
                    ledger.reserved.pop(key, None)
                    changed = True
            return changed

        self._update(group, change)

    def move(self, group: str, old_job: str, new_job: str, datasets: list[str]) -> None:
        """Re-key a job's reservations when its folder had to take another name."""

        def change(ledger: Ledger) -> bool:
            moved = False
            for name in datasets:
                reservation = ledger.reserved.pop(f"{old_job}/{name}", None)
                if reservation is not None:
                    ledger.reserved[f"{new_job}/{name}"] = reservation
                    moved = True
            return moved

        self._update(group, change)

    def release(self, group: str, keys: list[str]) -> None:
        def change(ledger: Ledger) -> bool:
            return any([ledger.reserved.pop(k, None) is not None for k in keys])

        self._update(group, change)

    def reconcile(self, group: str, status_of: Callable[[str], JobStatus | None]) -> int:
        """Settle reservations whose dataset ended but was never charged (its writer died).

        ``status_of(job)`` gives the job's status, or None if its folder does not exist; a
        status it cannot read (NcaasError, ValueError) keeps its reservations for a later sweep.
        Returns how many reservations were settled.
        """
        ledger = self.read(group)
        charges: dict[str, dict[str, float]] = {}
        orphans: list[str] = []
        now = time.time()
        for key, reservation in ledger.reserved.items():
            job, _, name = key.partition("/")
            try:
                status = status_of(job)
            except (NcaasError, ValueError) as e:
                log.warning("budget: %s/%s: its status cannot be read now: %s", group, job, e)
                continue
            if status is None:
                age = now - _epoch(reservation.at)
                if age > ORPHAN_RESERVATION_SECONDS:
                    orphans.append(key)
                continue
            ds = status.datasets.get(name)
            if ds is None:
                orphans.append(key)
            elif ds.state.terminal:
                charges.setdefault(job, {})[name] = ds.cost_usd or 0.0
        for job, costs in charges.items():
            self.charge(group, job, costs)
        if orphans:
            self.release(group, orphans)
        return sum(len(c) for c in charges.values()) + len(orphans)


def _epoch(stamp: str) -> float:
    from .pricing import parse_time

    return parse_time(stamp).timestamp()


def cost_finished(status: JobStatus, was_terminal: dict[str, bool]) -> dict[str, float]:
    """Cost each dataset this update made terminal, from its runtime and the job's price.

    Writes ``cost_usd`` on those datasets and the job's total; returns the new costs. A job
    without a price (created before costing existed) is left uncosted.
    """
    price = status.provenance.get("price_usd_per_hour")
    if not isinstance(price, int | float):
        return {}
    # Reserved at `price` (on-demand, the upper bound); charged at what the launcher learnt
    # the hours really cost where it knows (the Batch launcher on spot: AWS's spot price).
    charged = status.provenance.get("charge_usd_per_hour")
    price = charged if isinstance(charged, int | float) else price
    costs: dict[str, float] = {}
    for name, ds in status.datasets.items():
        if not ds.state.terminal or was_terminal.get(name, False) or ds.cost_usd is not None:
            continue
        if ds.started is None:
            ds.cost_usd = 0.0  # never ran: nothing to bill
        else:
            ds.cost_usd = run_cost(float(price), runtime_seconds(ds.started, ds.finished))
        costs[name] = ds.cost_usd
    if costs:
        status.cost_usd = round(sum(d.cost_usd or 0.0 for d in status.datasets.values()), 4)
    return costs
