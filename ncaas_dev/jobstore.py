"""The job folder's status.json as a shared record: conditional writes, no lost updates.

Several writers touch one job (the dispatcher, one runner per dataset, on one machine or on
many instances), so every change is read-modify-write with S3's If-Match, retried on conflict.
Whoever makes the last dataset terminal also writes end.txt: no coordinator is needed.
Whoever makes a dataset terminal also costs it and charges the group's ledger, so the same
accounting holds wherever the writer runs (dispatcher, local runner, runner on an instance).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any

from .budget import Budget, cost_finished
from .compat import neurocaas
from .errors import NcaasError
from .lastseen import LastSeen
from .layout import JobPaths, open_marker
from .status import JobStatus, render_certificate, settle, utcnow
from .storage import PreconditionFailed, Storage

Mutation = Callable[[JobStatus], None]
MAX_ATTEMPTS = 50
log = logging.getLogger(__name__)


_last_seen = LastSeen()


class JobStore:
    def __init__(self, storage: Storage, bucket: str) -> None:
        self.storage = storage
        self.bucket = bucket

    def create(self, status: JobStatus) -> bool:
        """Claim the job folder by creating its status.json; False if the folder is taken."""
        paths = JobPaths(status.group, status.job)
        doc = status.model_dump(mode="json")
        try:
            etag = self.storage.put_json(self.bucket, paths.status, doc, if_none_match=True)
        except PreconditionFailed:
            return False
        _last_seen.put(self.bucket, paths.status, doc, etag)
        if not status.state.terminal:
            self.mark_open(status.group, status.job)
        self._publish(status, paths)
        return True

    def mark_open(self, group: str, job: str) -> None:
        """Index the job as open (after its status.json exists, before its claim is published:
        a creator that dies in between leaves the claim unpublished, and whoever retakes it
        marks the job again)."""
        self.storage.put_bytes(self.bucket, open_marker(group, job), b"")

    def mark_closed(self, group: str, job: str) -> None:
        """Drop the job from the index of open jobs. Never raises: a marker left behind only
        costs the next sweep one read, after which the sweep drops it."""
        try:
            self.storage.delete(self.bucket, open_marker(group, job))
        except NcaasError as e:
            log.warning("%s: could not drop it from the open jobs: %s", job, e)

    def exists(self, group: str, job: str) -> bool:
        """Whether anything (status.json or any other file) is in the job's folder."""
        return self.storage.any_under(self.bucket, JobPaths(group, job).root)

    def read(self, group: str, job: str) -> JobStatus:
        key = JobPaths(group, job).status
        doc, etag = self.storage.get_json(self.bucket, key)
        status = JobStatus.model_validate(doc)
        _last_seen.put(self.bucket, key, doc, etag)
        return status

    def update(self, group: str, job: str, mutate: Mutation, publish: bool = True) -> JobStatus:
        """Apply ``mutate`` to the current status and write it back if nobody wrote meanwhile.

        When this update finishes the job (every dataset terminal, for the first time),
        end.txt is written after status and certificate: it is always the last file.
        ``publish=False``: no certificate.txt for this change, since a write that publishes
        follows within milliseconds (a launch claim's runner announcing itself); a change
        that ends the job always publishes.
        """
        paths = JobPaths(group, job)
        for attempt in range(MAX_ATTEMPTS):
            seen = _last_seen.get(self.bucket, paths.status) if attempt == 0 else None
            doc, etag = seen or self.storage.get_json(self.bucket, paths.status)
            status = JobStatus.model_validate(doc)
            was_done = status.state.terminal
            was_terminal = {name: ds.state.terminal for name, ds in status.datasets.items()}
            before = neurocaas.dataset_docs(status) if neurocaas.is_compat(status) else None
            mutate(status)
            costs = cost_finished(status, was_terminal)
            settle(status)
            status.updated = utcnow()
            new_doc = status.model_dump(mode="json")
            try:
                new_etag = self.storage.put_json(self.bucket, paths.status, new_doc, if_match=etag)
            except PreconditionFailed:
                _last_seen.forget(self.bucket, paths.status)
                if seen is None:  # a real conflict, not just an old copy: back off
                    time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
                continue
            _last_seen.put(self.bucket, paths.status, new_doc, new_etag)
            # NeuroCAAS's per-dataset files are written for what changed since ``before``:
            # in that layout every write publishes.
            if publish or status.state.terminal or neurocaas.is_compat(status):
                self._publish(status, paths, before)
            if costs:
                self._charge(status, costs)
            if status.state.terminal and not was_done:
                self.write_end(status)
                self.mark_closed(group, job)
            return status
        raise PreconditionFailed(
            f"status of {job}: gave up after {MAX_ATTEMPTS} conflicting writes"
        )

    def _charge(self, status: JobStatus, costs: dict[str, float]) -> None:
        # The cost is already in status.json; a ledger that cannot be written now is settled
        # from there by the dispatcher's next sweep (Budget.reconcile), so this never raises.
        try:
            Budget(self.storage, self.bucket).charge(status.group, status.job, costs)
        except NcaasError as e:
            log.error("%s: could not charge the ledger of %s: %s", status.job, status.group, e)

    def _publish(
        self, status: JobStatus, paths: JobPaths, before: dict[str, Any] | None = None
    ) -> None:
        """certificate.txt (and, in NeuroCAAS's layout, each dataset's status file that
        changed since ``before``), after every change of status.json."""
        if not neurocaas.is_compat(status):
            self.storage.put_text(self.bucket, paths.certificate, render_certificate(status))
            return
        for name, doc in neurocaas.dataset_docs(status).items():
            if before is None or before.get(name) != doc:
                self.storage.put_json(self.bucket, paths.dataset_status(name), doc)
        self.storage.put_text(self.bucket, paths.certificate, neurocaas.render_certificate(status))

    def write_end(self, status: JobStatus) -> None:
        paths = JobPaths(status.group, status.job)
        if neurocaas.is_compat(status):  # what NeuroCAAS clients wait for, word for word
            self.storage.put_text(self.bucket, paths.end, neurocaas.END_MARKER + "\n")
            return
        lines = [f"{status.job} {status.state.value} at {status.finished or utcnow()}"]
        if status.reason:
            lines.append(f"reason: {status.reason}")
        lines += [f"{name}: {ds.state.value}" for name, ds in status.datasets.items()]
        self.storage.put_text(self.bucket, paths.end, "\n".join(lines) + "\n")
