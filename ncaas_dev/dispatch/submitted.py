"""A submission's claim (who admits it) and its pointer (which job it became).

The claim, ``.ncaas/claims/{sha256(key, etag)}.json``, is written first with If-None-Match:
of repeated events (or several dispatchers) only one admits a submission. The pointer,
``{group}/submissions/{id}_submit.json.job``, is written last, once the job folder exists: it
tells whoever submitted (who can read the group's prefix, not ``.ncaas/``) which job their
submission became, and a sweep listing the submissions sees which ones are done without
reading a claim. A group's users can write their prefix, so a pointer is believed only with
the job's own status.json (written by the dispatcher alone) agreeing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..errors import NcaasError
from ..jobstore import JobStore
from ..layout import claim_key, pointed_job, pointer_doc, submission_pointer_key
from ..status import JobStatus
from ..storage import NotFound, PreconditionFailed, Storage
from .claims import claim_doc, claim_is_stale

log = logging.getLogger(__name__)


@dataclass
class SubmissionClaims:
    storage: Storage
    owner: str

    def take(self, bucket: str, key: str, etag: str) -> str | None:
        """Claim the submission: first writer wins ("new"); a dead writer's open claim is
        retaken ("retaken"); None if someone else holds it."""
        claim = claim_key(key, etag)
        try:
            self.storage.put_json(
                bucket, claim, claim_doc(key, etag, None, self.owner), if_none_match=True
            )
            return "new"
        except PreconditionFailed:
            pass
        try:
            doc, claim_etag = self.storage.get_json(bucket, claim)
        except NotFound:
            return None
        # A claim names its job only if made before the pointers (older versions did).
        if doc.get("job") or not claim_is_stale(doc.get("owner"), doc.get("claimed_at")):
            return None
        if self.pointed_job(bucket, key, etag) is not None:
            return None  # its claimer finished: the pointer is the last step
        try:
            self.storage.put_json(
                bucket, claim, claim_doc(key, etag, None, self.owner), if_match=claim_etag
            )
        except PreconditionFailed:
            return None  # another dispatcher retook it first
        log.info("retook the abandoned claim of %s (was %s)", key, doc.get("owner"))
        return "retaken"

    def publish(self, bucket: str, key: str, etag: str, job: str) -> None:
        """Leave the pointer beside the submission: its job, for whoever submitted it (the
        last step: only once status.json exists, so whoever reads the name can read the job)."""
        self.storage.put_json(bucket, submission_pointer_key(key), pointer_doc(key, etag, job))

    def pointed_job(self, bucket: str, key: str, etag: str) -> str | None:
        """The job a finished admission of this submission made, by its pointer, checked
        against the job's own status (a group's users can write a pointer, not a job)."""
        try:
            doc, _ = self.storage.get_json(bucket, submission_pointer_key(key))
        except (NotFound, ValueError):
            return None
        job = pointed_job(doc, key, etag)
        if job is None:
            return None
        try:
            status = JobStore(self.storage, bucket).read(key.split("/", 1)[0], job)
        except (NcaasError, ValueError):
            return None
        if status.submission != key or status.provenance.get("submission_etag") != etag:
            return None
        return job

    def job_of_abandoned(
        self, store: JobStore, group: str, key: str, etag: str
    ) -> JobStatus | None:
        """A job folder already made for this submission (only after retaking a claim)."""
        for job in self.storage.list_folders(store.bucket, f"{group}/results/"):
            try:
                status = store.read(group, job)
            except (NcaasError, ValueError):
                continue
            if status.submission == key and status.provenance.get("submission_etag") == etag:
                return status
        return None
