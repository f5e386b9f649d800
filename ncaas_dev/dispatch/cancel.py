"""Cancelling: a ``{group}/submissions/{id}_cancel.json`` request in, the job's work stopped.

The request (``{"job": "job_...", "datasets": [...]?, "by": "alice"?}``) names a job of the
same group. A job the group does not have, a job that already ended, a malformed request:
nothing changes, and the dispatcher's log says why.

It ends the datasets in two steps, so that end.txt stays the last file of the job folder:
- a dataset nobody runs yet (``queued``) is ``cancelled`` at once: a runner launched meanwhile
  finds it ended and starts nothing;
- a running dataset gets a cancel mark (``cancel_requested``: the reason) in status.json and
  its launcher stops the work. Its runner stops the analysis, uploads what it wrote, and
  records ``cancelled`` with the mark's reason; a runner that dies instead is settled the same
  way by the dispatcher (``Scheduler.settle_runner``).
Both steps are conditional writes on status.json, so the same request twice, or a request and
a runner finishing at the same moment, end each dataset once. A dispatcher killed between the
mark and the stop leaves the mark: the sweep of the next one finds the job open with a marked
dataset still running and stops it again (``resume``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from ..analysis import AnalysisRecord, load_record
from ..errors import NcaasError
from ..events import ObjectCreated
from ..jobstore import JobStore
from ..launchers.base import DatasetTask, Launcher
from ..layout import is_cancel_key, shown
from ..status import CANCEL_MARK, JobStatus, State, cancel_mark, shown_time, utcnow
from ..storage import NotFound, Storage
from .admission import Outcome

log = logging.getLogger(__name__)
MAX_REQUEST_BYTES = 64 * 1024
WHO = re.compile(r"[A-Za-z0-9@._+-]{1,64}")  # a user name or e-mail: nothing that can spoof
TaskOf = Callable[[str, AnalysisRecord, JobStatus, str], DatasetTask]


class BadRequest(ValueError):
    """A cancel request that cannot be read; its message says what is wrong."""


@dataclass(frozen=True)
class CancelRequest:
    group: str
    job: str
    datasets: frozenset[str] | None  # None: every dataset of the job
    by: str  # who asked: the request's "by", else the request file

    def reason(self, at: str) -> str:
        return f"cancelled by {self.by} at {shown_time(at)}"


def parse_request(raw: bytes, key: str) -> CancelRequest:
    """The request in ``key``'s body, or ``BadRequest`` naming what is wrong (pure)."""
    group = key.split("/", 1)[0]
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise BadRequest(f"not JSON ({e})") from None
    if not isinstance(doc, dict):
        raise BadRequest('not a JSON object: write {"job": "<job folder name>"}')
    job = doc.get("job")
    if not isinstance(job, str) or not job or "/" in job or job in (".", ".."):
        raise BadRequest(f'"job" must be a job folder name, got {shown(job)}')
    datasets = doc.get("datasets")
    if datasets is not None and (
        not isinstance(datasets, list) or not all(isinstance(d, str) for d in datasets)
    ):
        raise BadRequest(f'"datasets" must be a list of dataset names, got {shown(datasets)}')
    by = doc.get("by")  # who asked, as the CLI, API and web client write it; else the file
    who = by if isinstance(by, str) and WHO.fullmatch(by) else f"file {key}"
    return CancelRequest(group, job, frozenset(datasets) if datasets else None, who)


def mark(status: JobStatus, request: CancelRequest, at: str) -> list[str]:
    """Apply ``request`` to ``status`` (pure): queued datasets end ``cancelled``, running ones
    are marked. Returns the datasets it changed (none: a repeat, or nothing left to cancel)."""
    reason = request.reason(at)
    changed: list[str] = []
    for name, ds in status.datasets.items():
        if request.datasets is not None and name not in request.datasets:
            continue
        if ds.state.terminal or cancel_mark(ds):
            continue
        if ds.state == State.QUEUED:
            ds.state, ds.reason, ds.finished = State.CANCELLED, reason, at
        else:
            setattr(ds, CANCEL_MARK, reason)  # an extra field: the runner ends it
        changed.append(name)
    if changed:
        status.log(f"{reason}: {', '.join(changed)}")
    return changed


@dataclass
class Canceller:
    storage: Storage
    launcher: Launcher
    task_of: TaskOf  # the scheduler's: the task a runner of that dataset was given

    def handle(self, event: ObjectCreated) -> Outcome:
        """Handle one cancel request; a failure here is logged and answered, never raised."""
        try:
            return self._handle(event)
        except NcaasError as e:
            log.error("cancel %s/%s: %s", event.bucket, event.key, e)
            return Outcome(event.key, "error", reason=str(e))
        except Exception as e:  # one request's bug must not stop the events behind it
            log.exception("cancel %s/%s: unexpected failure", event.bucket, event.key)
            return Outcome(event.key, "error", reason=f"{type(e).__name__}: {e}")

    def _ignored(self, event: ObjectCreated, reason: str, job: str | None = None) -> Outcome:
        log.warning("cancel request %s/%s changes nothing: %s", event.bucket, event.key, reason)
        return Outcome(event.key, "ignored", job=job, reason=reason)

    def _handle(self, event: ObjectCreated) -> Outcome:
        if not is_cancel_key(event.key):
            return Outcome(event.key, "ignored", reason="not a cancel request key")
        record = load_record(self.storage, event.bucket)
        if record is None:
            return self._ignored(event, f"bucket {event.bucket} not provisioned")
        group = event.key.split("/", 1)[0]
        if group not in {g.name for g in record.blueprint.groups}:
            return self._ignored(event, f"group {group} may not use {event.bucket}")
        try:
            raw, _ = self.storage.get_bytes(event.bucket, event.key, max_bytes=MAX_REQUEST_BYTES)
            request = parse_request(raw, event.key)
        except NotFound:
            return self._ignored(event, "the request no longer exists")
        except BadRequest as e:
            return self._ignored(event, f"bad request: {e}")
        store = JobStore(self.storage, event.bucket)
        try:
            current = store.read(group, request.job)
        except (NotFound, ValueError):
            return self._ignored(event, f"group {group} has no job {request.job}")
        if current.state.terminal:
            why = f"job {request.job} already ended ({current.state.value})"
            return self._ignored(event, why, request.job)
        unknown = sorted((request.datasets or set()) - set(current.datasets))
        if unknown and request.datasets is not None and set(unknown) == set(request.datasets):
            return self._ignored(event, f"job {request.job} has no dataset {', '.join(unknown)}")
        changed: list[str] = []
        at = utcnow()

        def apply(status: JobStatus) -> None:
            nonlocal changed
            changed = mark(status, request, at)

        status = store.update(group, request.job, apply)
        self.stop(event.bucket, record, status, changed)
        if not changed:
            return Outcome(event.key, "duplicate", request.job, "nothing left to cancel")
        return Outcome(event.key, "cancelled", request.job, ", ".join(changed))

    def stop(
        self, bucket: str, record: AnalysisRecord, status: JobStatus, names: list[str]
    ) -> None:
        """Have the launcher stop the work of ``names`` wherever it runs (returns at once)."""
        for name in names:
            ds = status.datasets[name]
            if ds.runner is None and ds.state == State.CANCELLED:
                continue  # never launched: nothing runs
            try:
                self.launcher.cancel(self.task_of(bucket, record, status, name), ds.runner)
            except NcaasError as e:  # the sweep tries again while the mark stands
                log.error("%s/%s/%s: could not stop its runner: %s", bucket, status.job, name, e)

    def resume(self, bucket: str, record: AnalysisRecord, status: JobStatus) -> int:
        """The sweep's part: stop again the marked datasets still running in an open job (their
        stop was lost with a dispatcher, or did not take). Returns how many it asked to stop."""
        datasets = status.datasets.items()
        marked = [n for n, ds in datasets if not ds.state.terminal and cancel_mark(ds)]
        self.stop(bucket, record, status, marked)
        return len(marked)
