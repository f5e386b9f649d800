"""The sweep: find the work no live dispatcher owns, on every analysis provisioned on the stack.

It catches submissions whose event was lost or whose claimer died before finishing, queued
datasets nobody launched, launch claims left by a dead dispatcher, and ledger reservations of
datasets that ended without being charged. Safe to run by several dispatchers at once: every
step goes through the same conditional claims as the event path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from ..analysis import AnalysisRecord, load_record
from ..bucketconfig import list_buckets
from ..budget import Budget
from ..errors import NcaasError, ServiceUnavailable
from ..events import ObjectCreated
from ..jobstore import JobStore
from ..layout import (
    OPEN_INDEX_RECORD,
    OPEN_PREFIX,
    POINTER_SUFFIX,
    SWEEP_RECORD,
    claim_key,
    is_submission_key,
    not_a_submission,
    submissions_prefix,
)
from ..status import JobStatus, utcnow
from ..storage import NotFound, ObjectInfo, Storage
from .admission import Outcome
from .claims import claim_is_stale

log = logging.getLogger(__name__)
Handle = Callable[[ObjectCreated], Outcome]
QueueWaiting = Callable[[str, AnalysisRecord, JobStatus], int]


FULL_LISTING_SECONDS = 600.0  # a cold Lambda's sweeps; the local dispatcher: every sweep
RECORD_FULL_LISTING_SECONDS = 60.0


class SweepMark(BaseModel):
    """``.ncaas/sweep.json``: when a sweep last listed every submission (epoch seconds), and per
    group the last key of the unbroken run of done submissions it then saw."""

    full_at: float = 0.0
    after: dict[str, str] = Field(default_factory=dict)


@dataclass
class Sweeper:
    storage: Storage
    handle: Handle  # the event path, for submissions whose event was lost
    queue_waiting: QueueWaiting  # the scheduler's, for jobs with datasets nobody launched
    # What a sweep never needs to read again.
    _indexed: set[str] = field(default_factory=set)  # buckets whose index of open jobs exists
    _known_claims: set[tuple[str, str]] = field(default_factory=set)
    _misnamed: set[tuple[str, str]] = field(default_factory=set)  # said once per version

    # How often a sweep lists every submission again, not only those after its mark.
    full_listing_every: float = FULL_LISTING_SECONDS

    def sweep(self, full_listing: bool = False) -> int:
        """One pass over every provisioned analysis; returns how many datasets it queued.
        ``full_listing``: list every submission, whatever the mark says (a starting dispatcher)."""
        queued = 0
        for bucket in list_buckets(self.storage):
            try:
                queued += self._sweep_analysis(bucket, full_listing)
            except ServiceUnavailable:
                raise  # nothing answers: every other bucket would fail the same way
            except (NcaasError, ValueError) as e:
                # One analysis's damaged object must not stop the sweep of the others, nor a
                # dispatcher's start-up; the next sweep tries this one again.
                log.warning("sweep: %s: skipped this time: %s", bucket, e)
        return queued

    def _sweep_analysis(self, bucket: str, full_listing: bool) -> int:
        record = load_record(self.storage, bucket)
        if record is None:  # not an analysis's bucket
            return 0
        self._sweep_submissions(bucket, record, full_listing)
        return self._sweep_jobs(bucket, record)

    def _sweep_submissions(self, bucket: str, record: AnalysisRecord, full_listing: bool) -> None:
        """Handle submissions whose event was lost, or whose claimer died before finishing.

        The submissions' own listing is their index: an admission's last step leaves a pointer
        beside its submission (``{id}_submit.json.job``), so a submission listed with a pointer
        at least as new as itself is done, and only the others cost a read of their claim.
        The sweep record (``.ncaas/sweep.json``) marks, per group, the last submission of an
        unbroken run of done ones, and a sweep lists only what sorts after it: a cold sweep of
        10,000 finished submissions is one page. Every ``full_listing_every`` seconds, and when
        asked, a sweep lists them all again: a lost event of a submission whose name sorts
        before the mark is found then.
        """
        mark = self._read_mark(bucket)
        now = time.time()
        full = full_listing or now - mark.full_at >= self.full_listing_every
        after = {
            g.name: mark.after[g.name] for g in record.blueprint.groups if g.name in mark.after
        }
        for group in record.blueprint.groups:
            if full:
                after.pop(group.name, None)
            prefix = submissions_prefix(group.name)
            listed = self.storage.list_objects(bucket, prefix, after.get(group.name))
            pointers = {
                o.key.removesuffix(POINTER_SUFFIX): o.modified
                for o in listed
                if o.key.endswith(POINTER_SUFFIX)
            }
            unbroken = True
            for obj in listed:
                if is_submission_key(obj.key):
                    unbroken = self._done_or_handled(bucket, obj, pointers) and unbroken
                elif not obj.key.endswith(POINTER_SUFFIX):
                    self._tell_misnamed(bucket, obj.key, obj.etag)
                if unbroken:  # pointers and misnamed files too: none is listed again
                    after[group.name] = obj.key
        # A full listing is recorded at most once a minute: a dispatcher that lists everything
        # at each sweep (the local one) writes the record only when its mark moves.
        recorded = full and now - mark.full_at >= RECORD_FULL_LISTING_SECONDS
        changed = SweepMark(full_at=now if recorded else mark.full_at, after=after)
        if changed != mark:
            self.storage.put_json(bucket, SWEEP_RECORD, changed.model_dump())

    def _read_mark(self, bucket: str) -> SweepMark:
        try:
            doc, _ = self.storage.get_json(bucket, SWEEP_RECORD)
            return SweepMark.model_validate(doc)
        except (NotFound, ValueError):  # none yet, or not one we wrote: list everything
            return SweepMark()

    def _done_or_handled(self, bucket: str, obj: ObjectInfo, pointers: dict[str, float]) -> bool:
        """True if the submission was done before this sweep; else hand it to the event path,
        unless a live dispatcher holds its claim."""
        if (obj.key, obj.etag) in self._known_claims:
            return True
        # LastModified of the pointer >= the submission's: made for this version.
        if pointers.get(obj.key, -1.0) >= obj.modified:
            self._known_claims.add((obj.key, obj.etag))
            return True
        try:
            doc, _ = self.storage.get_json(bucket, claim_key(obj.key, obj.etag))
        except NotFound:
            doc = None  # never claimed: its event was lost
        if doc is not None:
            if doc.get("job"):  # a claim from before the pointers: done
                self._known_claims.add((obj.key, obj.etag))
                return True
            if not claim_is_stale(doc.get("owner"), doc.get("claimed_at")):
                return False
        outcome = self.handle(ObjectCreated(bucket, obj.key, obj.etag, obj.size))
        log.info("sweep: %s: %s %s", obj.key, outcome.action, outcome.job or "")
        return False

    def _tell_misnamed(self, bucket: str, key: str, etag: str) -> None:
        """A file meant as a submission but misnamed (no event reaches the dispatcher for it:
        the notification filters on the suffix) gets a line in the dispatcher's log."""
        reason = not_a_submission(key)
        if reason is not None and (key, etag) not in self._misnamed:
            self._misnamed.add((key, etag))
            log.warning("s3://%s/%s", bucket, reason)

    def _sweep_jobs(self, bucket: str, record: AnalysisRecord) -> int:
        """Queue what waits in the open jobs, drop ended jobs from the index, settle budgets.

        Reads only the jobs the index of open jobs names. A bucket without the index (jobs made
        before it existed) is listed once in full; its open jobs are indexed, then the index
        record says the index is complete.
        """
        store = JobStore(self.storage, bucket)
        budget = Budget(self.storage, bucket)
        indexed = self._indexed_jobs(bucket, record)
        queued = 0
        for group in record.blueprint.groups:
            statuses: dict[str, JobStatus] = {}
            for job in indexed.get(group.name, []):
                try:
                    status = store.read(group.name, job)
                except NotFound:  # its folder is gone
                    store.mark_closed(group.name, job)
                    continue
                except (NcaasError, ValueError):
                    continue
                statuses[job] = status
                if status.state.terminal:  # its ender died before dropping the marker
                    store.mark_closed(group.name, job)
                    continue
                queued += self.queue_waiting(bucket, record, status)
            budget.reconcile(group.name, _status_lookup(store, group.name, statuses))
        return queued

    def _indexed_jobs(self, bucket: str, record: AnalysisRecord) -> dict[str, list[str]]:
        """The open jobs of each group, by the index (built first if the bucket has none)."""
        if bucket not in self._indexed and self.storage.head(bucket, OPEN_INDEX_RECORD) is None:
            self._build_index(bucket, record)
        self._indexed.add(bucket)
        jobs: dict[str, list[str]] = {}
        for obj in self.storage.list_objects(bucket, OPEN_PREFIX):
            group, _, job = obj.key[len(OPEN_PREFIX) :].partition("/")
            if job and "/" not in job:
                jobs.setdefault(group, []).append(job)
        return jobs

    def _build_index(self, bucket: str, record: AnalysisRecord) -> None:
        """Index every open job of a bucket made before the index (one full listing, once)."""
        store = JobStore(self.storage, bucket)
        for group in record.blueprint.groups:
            for job in self.storage.list_folders(bucket, f"{group.name}/results/"):
                try:
                    status = store.read(group.name, job)
                except (NcaasError, ValueError):
                    continue
                if not status.state.terminal:
                    store.mark_open(group.name, job)
        self.storage.put_json(bucket, OPEN_INDEX_RECORD, {"since": utcnow()})
        log.info("sweep: %s: indexed its open jobs", bucket)


def _status_lookup(
    store: JobStore, group: str, known: dict[str, JobStatus]
) -> Callable[[str], JobStatus | None]:
    def status_of(job: str) -> JobStatus | None:
        if job in known:
            return known[job]
        try:
            return store.read(group, job)
        except NotFound:
            return None

    return status_of
