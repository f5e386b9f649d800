"""status.json and certificate.txt: the models, their transitions and rendering (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class State(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    REJECTED = "rejected"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self not in (State.QUEUED, State.RUNNING)


def utcnow() -> str:
    """ISO 8601 UTC with milliseconds: runtimes (costs) and overlaps (the concurrency cap)
    are measured from these stamps, so whole seconds are too coarse."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def shown_time(stamp: str) -> str:
    """A stamp as certificate.txt shows it: to the second, like NeuroCAAS."""
    return stamp[:19] + "Z" if len(stamp) > 20 else stamp


class Event(BaseModel):
    time: str
    message: str


class DatasetStatus(BaseModel):
    model_config = ConfigDict(extra="allow")

    key: str
    state: State = State.QUEUED
    exit_code: int | None = None
    reason: str | None = None
    started: str | None = None
    finished: str | None = None
    runner: str | None = None
    last_output: str = ""
    # The fraction done the analysis's latest output line shows (tqdm, NN%), else None.
    progress: float | None = None
    etag: str | None = None
    # Who claimed the dataset for launch, and when: a claim whose dispatcher died is retaken.
    claimed_by: str | None = None
    claimed_at: str | None = None
    cost_usd: float | None = None


class JobStatus(BaseModel):
    model_config = ConfigDict(extra="allow")

    job: str
    analysis: str
    group: str
    submission: str
    configname: str | None = None
    state: State = State.QUEUED
    reason: str | None = None
    created: str = Field(default_factory=utcnow)
    updated: str = Field(default_factory=utcnow)
    finished: str | None = None
    datasets: dict[str, DatasetStatus] = Field(default_factory=dict)
    cost_usd: float | None = None
    provenance: dict[str, Any] = Field(default_factory=dict)
    events: list[Event] = Field(default_factory=list)

    def log(self, message: str) -> None:
        self.events.append(Event(time=utcnow(), message=message))
        self.updated = utcnow()

    @property
    def all_datasets_done(self) -> bool:
        return all(d.state.terminal for d in self.datasets.values())


# A running dataset a cancel request marked (an extra field holding the reason): its runner,
# or whoever settles a runner that ended without a result, ends it ``cancelled`` with it.
CANCEL_MARK = "cancel_requested"


def cancel_mark(ds: DatasetStatus) -> str | None:
    """The reason a cancel request marked this dataset with, if one did."""
    value = (ds.model_extra or {}).get(CANCEL_MARK)
    return str(value) if value else None


_UNHAPPY_ORDER = (State.FAILED, State.TIMED_OUT, State.CANCELLED)


def settle(status: JobStatus) -> None:
    """Derive the job's state (and its reason) from its datasets'."""
    if status.state == State.REJECTED:
        return
    states = [d.state for d in status.datasets.values()]
    if not status.all_datasets_done:
        status.state = (
            State.RUNNING
            if State.RUNNING in states or any(s.terminal for s in states)
            else State.QUEUED
        )
        return
    if all(s == State.SUCCEEDED for s in states):
        status.state, status.reason = State.SUCCEEDED, None
    else:
        status.state = next(s for s in _UNHAPPY_ORDER if s in states)
        unhappy = [(n, d) for n, d in status.datasets.items() if d.state != State.SUCCEEDED]
        ok = len(states) - len(unhappy)
        first_name, first = unhappy[0]
        status.reason = f"{len(unhappy)} of {len(states)} dataset(s) did not succeed"
        if ok or len(unhappy) > 1 or len(states) > 1:
            status.reason += f"; {first_name}: {first.reason}"
        else:
            status.reason = f"{first_name}: {first.reason}"
    now = utcnow()
    status.finished = status.finished or now
    status.updated = now


def reject(status: JobStatus, reason: str) -> None:
    status.state = State.REJECTED
    status.reason = reason
    status.log(f"rejected: {reason}")
    status.finished = status.updated
    settle_rejected(status)


def settle_rejected(status: JobStatus) -> None:
    """End every unfinished dataset of a rejected job as ``rejected``, with the job's reason: a
    script polling a dataset's state must see it end, not wait on ``queued`` forever."""
    for ds in status.datasets.values():
        if not ds.state.terminal:
            ds.state, ds.reason = State.REJECTED, status.reason
            ds.finished = ds.finished or status.finished or status.updated


def render_certificate(status: JobStatus) -> str:
    """certificate.txt in NeuroCAAS's shape: dataset block, then the dispatcher's log."""
    lines = [
        f"NCAAS JOB CERTIFICATE: {status.job}",
        f"ANALYSIS: {status.analysis} | GROUP: {status.group} | SUBMISSION: {status.submission}",
        f"STATE: {status.state.value} | UPDATED: {shown_time(status.updated)}"
        + (f" | COST: ${status.cost_usd:.4f}" if status.cost_usd is not None else ""),
        "",
        "DATASETS:",
    ]
    if not status.datasets:
        lines.append("(none)")
    for name, ds in status.datasets.items():
        time = shown_time(ds.finished or ds.started or status.updated)
        last = ds.last_output.replace("\n", " ")[:200]
        line = f"DATANAME: {name} | STATUS: {ds.state.value} | TIME: {time} | LAST OUTPUT: {last}"
        if ds.state == State.QUEUED and ds.reason:
            line += f" | WAITING: {ds.reason}"
        lines.append(line)
    lines += ["", "DISPATCHER LOG:"]
    lines += [f"{shown_time(e.time)} {e.message}" for e in status.events]
    if status.reason and status.state in (
        State.REJECTED,
        State.FAILED,
        State.TIMED_OUT,
        State.CANCELLED,
    ):
        lines += ["", f"REASON: {status.reason}"]
    return "\n".join(lines) + "\n"
