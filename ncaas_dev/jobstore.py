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

from .budget import Budget, cost_finished
from .errors import NcaasError
from .layout import JobPaths
from .status import JobStatus, render_certificate, settle, utcnow
from .storage import PreconditionFailed, Storage

Mutation = Callable[[JobStatus], None]
MAX_ATTEMPTS = 50
log = logging.getLogger(__name__)


class JobStore:
    def __init__(self, storage: Storage, bucket: str) -> None:
        self.storage = storage
        self.bucket = bucket

    def create(self, status: JobStatus) -> bool:
        """Claim the job folder by creating its status.json; False if the folder is taken."""
        paths = JobPaths(status.group, status.job)
        try:
            self.storage.put_json(
                self.bucket, paths.status, status.model_dump(mode="json"), if_none_match=True
            )
        except PreconditionFailed:
            return False
        self._publish(status, paths)
        return True

    def exists(self, group: str, job: str) -> bool:
        paths = JobPaths(group, job)
        return self.storage.head(self.bucket, paths.status) is not None or bool(
            self.storage.list_objects(self.bucket, paths.root)
        )

    def read(self, group: str, job: str) -> JobStatus:
        doc, _ = self.storage.get_json(self.bucket, JobPaths(group, job).status)
        return JobStatus.model_validate(doc)

    def update(self, group: str, job: str, mutate: Mutation) -> JobStatus:
        """Apply ``mutate`` to the current status and write it back if nobody wrote meanwhile.

        When this update finishes the job (every dataset terminal, for the first time),
        end.txt is written after status and certificate: it is always the last file.
        """
        paths = JobPaths(group, job)
        for attempt in range(MAX_ATTEMPTS):
            doc, etag = self.storage.get_json(self.bucket, paths.status)
            status = JobStatus.model_validate(doc)
            was_done = status.state.terminal
            was_terminal = {name: ds.state.terminal for name, ds in status.datasets.items()}
            mutate(status)
            costs = cost_finished(status, was_terminal)
            settle(status)
            status.updated = utcnow()
            try:
                self.storage.put_json(
                    self.bucket, paths.status, status.model_dump(mode="json"), if_match=etag
                )
            except PreconditionFailed:
                time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
                continue
            self._publish(status, paths)
            if costs:
                self._charge(status, costs)
            if status.state.terminal and not was_done:
                self.write_end(status)
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

    def _publish(self, status: JobStatus, paths: JobPaths) -> None:
        self.storage.put_text(self.bucket, paths.certificate, render_certificate(status))

    def write_end(self, status: JobStatus) -> None:
        paths = JobPaths(status.group, status.job)
        lines = [f"{status.job} {status.state.value} at {status.finished or utcnow()}"]
        if status.reason:
            lines.append(f"reason: {status.reason}")
        lines += [f"{name}: {ds.state.value}" for name, ds in status.datasets.items()]
        self.storage.put_text(self.bucket, paths.end, "\n".join(lines) + "\n")
