"""The dispatcher core: S3 submission events in, job folders and launched datasets out.

The same core serves the local SQS loop and an AWS Lambda handler; only the launcher differs.
It never raises for a user's bad input: the answer goes into the job folder as ``rejected``.

Nothing it accepted depends on its memory alone: claims (of submissions and of datasets)
record who made them and when, and a sweep (at start, then every ``sweep_interval`` seconds)
finds work no live dispatcher owns: submissions never claimed (a lost event), claims and
dataset launches left half-done by a dispatcher that died, queued datasets, and ledger
reservations whose dataset ended without being charged.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import __version__
from .analysis import AnalysisRecord, load_record
from .budget import Budget, Projection, ReservationClash
from .errors import NcaasError
from .events import ObjectCreated
from .jobstore import JobStore
from .launchers.base import DatasetTask, Finished, Launcher
from .layout import INTERNAL_PREFIX, claim_key, is_submission_key, submissions_prefix
from .pricing import UnknownInstanceType, hourly_price, parse_time
from .status import DatasetStatus, JobStatus, State, reject, utcnow
from .storage import NotFound, PreconditionFailed, Storage
from .submission import MAX_SUBMISSION_BYTES, InvalidSubmission, Submission, parse_submission

log = logging.getLogger(__name__)

# A claim whose dispatcher is gone (same host, process dead) is retaken after this long;
# long enough for a runner it did start to have marked its dataset running.
DEAD_OWNER_GRACE_SECONDS = 10.0
# A claim from another machine (or a live pid that never finished) is retaken after this.
STALE_CLAIM_SECONDS = 600.0
WAITING = "waiting for a free slot"


def dispatcher_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _process_is_ncaas(pid: int) -> bool:
    """Whether ``pid`` is a live (non-zombie) ncaas process: a reused pid does not count."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    # An empty command line is a process between fork and exec: it may yet be ours.
    return (not cmdline or b"ncaas" in cmdline) and state != "Z"


def claim_is_stale(owner: str | None, claimed_at: str | None, now: float | None = None) -> bool:
    """Whether a claim's maker can be presumed gone, so another dispatcher may retake it."""
    if not claimed_at:
        return True  # made by a dispatcher that did not record itself: older than this rule
    age = (now if now is not None else time.time()) - parse_time(claimed_at).timestamp()
    if age >= STALE_CLAIM_SECONDS:
        return True
    host, _, pid = (owner or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return age >= DEAD_OWNER_GRACE_SECONDS and not _process_is_ncaas(int(pid))


@dataclass
class Outcome:
    """What the dispatcher did with one event (for logs, tests and the CLI)."""

    key: str
    action: str  # ignored | duplicate | rejected | started | error
    job: str | None = None
    reason: str | None = None


def _task_key(task: DatasetTask) -> tuple[str, str, str, str]:
    return (task.bucket, task.group, task.job, task.dataset)


@dataclass
class Dispatcher:
    storage: Storage
    launcher: Launcher
    endpoint_url: str | None
    region: str
    pending: deque[DatasetTask] = field(default_factory=deque)
    owner: str = field(default_factory=dispatcher_identity)
    sweep_interval: float = field(
        default_factory=lambda: float(os.environ.get("NCAAS_SWEEP_SECONDS", "10"))
    )
    _queued: set[tuple[str, str, str, str]] = field(default_factory=set)
    _ended_jobs: set[tuple[str, str, str]] = field(default_factory=set)
    _known_claims: set[tuple[str, str]] = field(default_factory=set)
    _last_sweep: float = -1e9
    _sweeping: bool = False

    # -- events ------------------------------------------------------------------------------
    def handle(self, event: ObjectCreated) -> Outcome:
        """Handle one event; a failure here is logged, never raised into the loop."""
        try:
            return self._handle(event)
        except NcaasError as e:
            log.error("event %s/%s: %s", event.bucket, event.key, e)
            return Outcome(event.key, "error", reason=str(e))
        except Exception as e:  # one event's bug must not stop the events behind it
            log.exception("event %s/%s: unexpected failure", event.bucket, event.key)
            return Outcome(event.key, "error", reason=f"{type(e).__name__}: {e}")

    def _claim_doc(self, key: str, etag: str, job: str | None) -> dict[str, Any]:
        return {
            "submission": key,
            "etag": etag,
            "job": job,
            "owner": self.owner,
            "claimed_at": utcnow(),
        }

    def _take_claim(self, bucket: str, key: str, etag: str) -> str | None:
        """Claim the submission: first writer wins ("new"); a dead writer's open claim is
        retaken ("retaken"); None if someone else holds it."""
        claim = claim_key(key, etag)
        try:
            self.storage.put_json(
                bucket, claim, self._claim_doc(key, etag, None), if_none_match=True
            )
            return "new"
        except PreconditionFailed:
            pass
        try:
            doc, claim_etag = self.storage.get_json(bucket, claim)
        except NotFound:
            return None
        if doc.get("job") or not claim_is_stale(doc.get("owner"), doc.get("claimed_at")):
            return None
        try:
            self.storage.put_json(
                bucket, claim, self._claim_doc(key, etag, None), if_match=claim_etag
            )
        except PreconditionFailed:
            return None  # another dispatcher retook it first
        log.info("retook the abandoned claim of %s (was %s)", key, doc.get("owner"))
        return "retaken"

    def _handle(self, event: ObjectCreated) -> Outcome:
        if not is_submission_key(event.key):
            return Outcome(event.key, "ignored", reason="not a submission key")
        record = load_record(self.storage, event.bucket)
        if record is None:
            return Outcome(event.key, "ignored", reason=f"bucket {event.bucket} not provisioned")
        head = self.storage.head(event.bucket, event.key)
        if head is None:
            return Outcome(event.key, "ignored", reason="submission no longer exists")
        group = event.key.split("/", 1)[0]
        claim = claim_key(event.key, head.etag)
        taken = self._take_claim(event.bucket, event.key, head.etag)
        if taken is None:
            return Outcome(event.key, "duplicate", reason="this submission was already handled")
        store = JobStore(self.storage, event.bucket)
        existing = None
        if taken == "retaken":
            existing = self._job_of_abandoned_claim(store, group, event.key, head.etag)
        if existing is not None:
            # The dead claimer had created the job folder but not yet published it.
            self.storage.put_json(
                event.bucket, claim, self._claim_doc(event.key, head.etag, existing.job)
            )
            self._queue_waiting(event.bucket, record, existing)
            self.pump()
            return Outcome(event.key, "started", job=existing.job, reason="recovered")
        raw, _ = self.storage.get_bytes(event.bucket, event.key, max_bytes=MAX_SUBMISSION_BYTES)
        submission: Submission | None = None
        problem: str | None = None
        try:
            submission = parse_submission(raw, group)
        except InvalidSubmission as e:
            problem = str(e)
        status = self._open_job(event.bucket, group, event.key, record, submission)
        status.provenance["submission_etag"] = head.etag

        def publish_claim() -> None:
            # Only once status.json exists: whoever reads the job's name can then read it.
            self.storage.put_json(
                event.bucket, claim, self._claim_doc(event.key, head.etag, status.job)
            )

        if problem is None and record.blueprint.group(group) is None:
            problem = (
                f"group '{group}' is not a user of analysis '{record.blueprint.analysis}'; "
                "ask its developer to add your group to the blueprint"
            )
        if problem is None and submission is not None:
            problem = self._check_inputs(event.bucket, submission, status)
        if problem is None and submission is not None:
            problem = self._reserve_budget(event.bucket, record, status, submission)
        if problem is not None:
            reject(status, problem)
            self._create(store, status)
            store.write_end(status)
            publish_claim()
            log.info("%s: rejected %s: %s", status.job, event.key, problem)
            return Outcome(event.key, "rejected", job=status.job, reason=problem)
        assert submission is not None
        cap = record.blueprint.limits.max_concurrent_jobs
        for name in submission.datasets:
            status.datasets[name].reason = f"{WAITING} (limits.max_concurrent_jobs is {cap})"
        status.log(f"accepted {len(submission.datasets)} dataset(s); queued for launch")
        self._create(store, status, budget_keys=list(submission.datasets))
        publish_claim()
        self._queue_waiting(event.bucket, record, status)
        self.pump()
        return Outcome(event.key, "started", job=status.job)

    def _create(
        self, store: JobStore, status: JobStatus, budget_keys: list[str] | None = None
    ) -> None:
        """Create the job folder; if another dispatcher took the name meanwhile, use a new one."""
        while not store.create(status):
            taken = self._rename(store, status)
            if budget_keys:  # move the reservation to the new name
                budget = Budget(self.storage, store.bucket)
                budget.move(status.group, taken, status.job, budget_keys)

    @staticmethod
    def _rename(store: JobStore, status: JobStatus) -> str:
        """Give the job a fresh folder name: another submission took this one just now."""
        taken = status.job
        base = taken.split("_", 2)
        status.job = f"{'_'.join(base[:2])}_{secrets.token_hex(3)}"
        while store.exists(status.group, status.job):
            status.job = f"{'_'.join(base[:2])}_{secrets.token_hex(3)}"
        status.log(f"{taken} was just taken by another submission; this job uses {status.job}")
        return taken

    def _job_of_abandoned_claim(
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

    def _open_job(
        self,
        bucket: str,
        group: str,
        key: str,
        record: AnalysisRecord,
        submission: Submission | None,
    ) -> JobStatus:
        """A status for a fresh job folder; a folder that exists is never reused."""
        store = JobStore(self.storage, bucket)
        stamp = submission.timestamp if submission and submission.timestamp else None
        base = f"job_{stamp or datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
        job = base
        notes: list[str] = []
        while store.exists(group, job):
            taken = job
            job = f"{base}_{secrets.token_hex(3)}"
            notes.append(f"{taken} already exists; this job uses {job}")
        instance_type = record.blueprint.cloud.instance_type
        status = JobStatus(
            configname=submission.configname if submission else None,
            job=job,
            analysis=record.blueprint.analysis,
            group=group,
            submission=key,
            provenance={
                "image": record.image,
                "image_id": record.image_id,
                "blueprint_hash": record.content_hash,
                "ncaas_version": __version__,
                "launcher": self.launcher.name,
                "instance_type": instance_type,
            },
        )
        with contextlib.suppress(UnknownInstanceType):  # refused by the budget check
            status.provenance["price_usd_per_hour"] = hourly_price(instance_type)
        status.log(f"received submission {key}")
        for note in notes:
            status.log(note)
        if submission is not None:
            for name, data_key in submission.datasets.items():
                status.datasets[name] = DatasetStatus(key=data_key)
        return status

    def _check_inputs(self, bucket: str, submission: Submission, status: JobStatus) -> str | None:
        missing: list[str] = []
        inputs: dict[str, str] = {}
        for key in (*submission.datanames, *filter(None, [submission.configname])):
            info = self.storage.head(bucket, key)
            if info is None:
                missing.append(key)
            else:
                inputs[key] = info.etag
        if missing:
            shown = ", ".join(missing[:5]) + (
                f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            )
            return f"input not found: {shown}; upload it to s3://{bucket}/ first, then submit again"
        status.provenance["inputs"] = inputs
        return None

    def _reserve_budget(
        self, bucket: str, record: AnalysisRecord, status: JobStatus, submission: Submission
    ) -> str | None:
        """Reserve the submission's worst-case cost in the group's ledger, or say why not."""
        blueprint = record.blueprint
        instance_type = blueprint.cloud.instance_type
        try:
            price = hourly_price(instance_type)
        except UnknownInstanceType as e:
            return (
                f"cannot check the budget: {e.message}; ask the analysis's developer to use "
                "a listed cloud.instance_type or add its price to the table"
            )
        projection = Projection(
            datasets=len(submission.datasets),
            instance_type=instance_type,
            price_per_hour=price,
            timeout_seconds=blueprint.run.timeout,
        )
        store = JobStore(self.storage, bucket)
        while True:
            try:
                problem = Budget(self.storage, bucket).reserve(
                    status.group,
                    status.job,
                    list(submission.datasets),
                    projection,
                    blueprint.limits.max_cost_usd,
                    submission=status.submission,
                )
                break
            except ReservationClash:
                self._rename(store, status)
        if problem is None:
            status.log(f"budget: reserved up to ${projection.usd:.4f} ({projection.describe()})")
        return problem

    # -- launching ---------------------------------------------------------------------------
    def _queue(self, task: DatasetTask) -> bool:
        key = _task_key(task)
        if key in self._queued:
            return False
        self._queued.add(key)
        self.pending.append(task)
        return True

    def _queue_waiting(self, bucket: str, record: AnalysisRecord, status: JobStatus) -> int:
        """Queue the job's datasets nobody launched (or whose launcher died while claiming)."""
        store = JobStore(self.storage, bucket)
        found = 0
        for name, ds in status.datasets.items():
            if ds.state != State.QUEUED:
                continue
            if ds.runner is not None:
                if not claim_is_stale(ds.claimed_by, ds.claimed_at):
                    continue
                if not self._release_launch_claim(store, status, name, ds):
                    continue
            task = DatasetTask(
                bucket=bucket,
                group=status.group,
                job=status.job,
                dataset=name,
                data_key=ds.key,
                config_key=status.configname,
                record=record,
                endpoint_url=self.endpoint_url,
                region=self.region,
            )
            found += self._queue(task)
        return found

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

    def pump(self) -> None:
        """Reap ended runners, sweep now and then, launch queued datasets while there is room."""
        for finished in self.launcher.reap():
            self._settle_runner(finished)
        if not self._sweeping and time.monotonic() - self._last_sweep >= self.sweep_interval:
            try:
                self.sweep()
            except NcaasError as e:
                log.error("sweep failed: %s", e)
        waiting: deque[DatasetTask] = deque()
        room: dict[str, int] = {}  # asked once per analysis per pump: a cloud launcher's
        while self.pending:  # count is an API call
            task = self.pending.popleft()
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

        store.update(task.group, task.job, claim)
        if not claimed:
            return
        try:
            runner = self.launcher.launch(task)
        except NcaasError as e:
            reason = f"infrastructure error: could not start a runner: {e}"

            def failed(status: JobStatus) -> None:
                ds = status.datasets[task.dataset]
                ds.state, ds.reason, ds.finished = State.FAILED, reason, utcnow()
                status.log(f"{task.dataset}: {reason}")

            store.update(task.group, task.job, failed)
            return

        def launched(status: JobStatus) -> None:
            ds = status.datasets[task.dataset]
            if ds.runner == starting:
                ds.runner = runner
            status.log(f"{task.dataset}: launched on {runner}")

        store.update(task.group, task.job, launched)

    # -- recovery ----------------------------------------------------------------------------
    def recover(self) -> int:
        """The sweep a starting dispatcher runs: returns how many datasets it queued."""
        return self.sweep()

    def sweep(self) -> int:
        """Find the work no live dispatcher owns, on every analysis provisioned on the stack.

        Safe to run by several dispatchers at once: every step goes through the same
        conditional claims as the event path. Returns how many datasets it queued.
        """
        from .provision import provisioned_analyses

        self._sweeping = True
        queued = 0
        try:
            for bucket in provisioned_analyses(self.storage):
                record = load_record(self.storage, bucket)
                if record is None:
                    continue
                self._sweep_submissions(bucket, record)
                queued += self._sweep_jobs(bucket, record)
        finally:
            self._sweeping = False
            self._last_sweep = time.monotonic()  # the interval runs between sweeps
        for finished in self.launcher.reap():  # runners found dead on adoption
            self._settle_runner(finished)
        return queued

    def _sweep_submissions(self, bucket: str, record: AnalysisRecord) -> None:
        """Handle submissions whose event was lost, or whose claimer died before finishing."""
        claims = {o.key for o in self.storage.list_objects(bucket, f"{INTERNAL_PREFIX}/claims/")}
        for group in record.blueprint.groups:
            for obj in self.storage.list_objects(bucket, submissions_prefix(group.name)):
                if not is_submission_key(obj.key) or (obj.key, obj.etag) in self._known_claims:
                    continue
                claim = claim_key(obj.key, obj.etag)
                if claim in claims:
                    try:
                        doc, _ = self.storage.get_json(bucket, claim)
                    except NotFound:
                        continue
                    if doc.get("job"):
                        self._known_claims.add((obj.key, obj.etag))
                        continue
                    if not claim_is_stale(doc.get("owner"), doc.get("claimed_at")):
                        continue
                outcome = self.handle(ObjectCreated(bucket, obj.key, obj.etag, obj.size))
                log.info("sweep: %s: %s %s", obj.key, outcome.action, outcome.job or "")

    def _sweep_jobs(self, bucket: str, record: AnalysisRecord) -> int:
        store = JobStore(self.storage, bucket)
        budget = Budget(self.storage, bucket)
        queued = 0
        for group in record.blueprint.groups:
            statuses: dict[str, JobStatus] = {}
            for job in self.storage.list_folders(bucket, f"{group.name}/results/"):
                if (bucket, group.name, job) in self._ended_jobs:
                    continue
                try:
                    status = store.read(group.name, job)
                except (NcaasError, ValueError):
                    continue
                statuses[job] = status
                if status.state.terminal:
                    self._ended_jobs.add((bucket, group.name, job))
                    continue
                queued += self._queue_waiting(bucket, record, status)

            budget.reconcile(group.name, self._status_lookup(store, group.name, statuses))
        return queued

    @staticmethod
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

    def _settle_runner(self, finished: Finished) -> None:
        """A runner that died without reporting leaves its dataset failed, never running."""
        task = finished.task
        store = JobStore(self.storage, task.bucket)

        def lost(status: JobStatus) -> None:
            ds = status.datasets[task.dataset]
            if ds.state.terminal:
                return
            ds.state, ds.finished = State.FAILED, utcnow()
            ds.reason = (
                f"runner lost: {finished.detail} before recording a result "
                "(infrastructure error; submit the dataset again)"
            )
            status.log(f"{task.dataset}: runner {finished.runner} ended without a result")

        try:
            if not store.read(task.group, task.job).datasets[task.dataset].state.terminal:
                store.update(task.group, task.job, lost)
        except NcaasError as e:
            log.error(
                "%s: could not record the end of runner %s: %s", task.label, finished.runner, e
            )
