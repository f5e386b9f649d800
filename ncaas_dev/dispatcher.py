"""The dispatcher core: S3 submission events in, job folders and launched datasets out.

The same core serves the local SQS loop and an AWS Lambda handler; only the launcher differs.
It never raises for a user's bad input: the answer goes into the job folder as ``rejected``.
"""

from __future__ import annotations

import logging
import secrets
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from . import __version__
from .analysis import AnalysisRecord, load_record
from .errors import NcaasError
from .events import ObjectCreated
from .jobstore import JobStore
from .launchers.base import DatasetTask, Finished, Launcher
from .layout import claim_key, is_submission_key
from .status import DatasetStatus, JobStatus, State, reject, utcnow
from .storage import PreconditionFailed, Storage
from .submission import MAX_SUBMISSION_BYTES, InvalidSubmission, Submission, parse_submission

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What the dispatcher did with one event (for logs, tests and the CLI)."""

    key: str
    action: str  # ignored | duplicate | rejected | started
    job: str | None = None
    reason: str | None = None


@dataclass
class Dispatcher:
    storage: Storage
    launcher: Launcher
    endpoint_url: str | None
    region: str
    pending: deque[DatasetTask] = field(default_factory=deque)

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
        try:
            self.storage.put_json(
                event.bucket,
                claim,
                {"submission": event.key, "etag": head.etag, "job": None},
                if_none_match=True,
            )
        except PreconditionFailed:
            return Outcome(event.key, "duplicate", reason="this submission was already handled")
        raw, _ = self.storage.get_bytes(event.bucket, event.key, max_bytes=MAX_SUBMISSION_BYTES)
        submission: Submission | None = None
        problem: str | None = None
        try:
            submission = parse_submission(raw, group)
        except InvalidSubmission as e:
            problem = str(e)
        status = self._open_job(event.bucket, group, event.key, record, submission)

        def publish_claim() -> None:
            # Only once status.json exists: whoever reads the job's name can then read it.
            self.storage.put_json(
                event.bucket, claim, {"submission": event.key, "etag": head.etag, "job": status.job}
            )

        store = JobStore(self.storage, event.bucket)
        if problem is None and record.blueprint.group(group) is None:
            problem = (
                f"group '{group}' is not a user of analysis '{record.blueprint.analysis}'; "
                "ask its developer to add your group to the blueprint"
            )
        if problem is None and submission is not None:
            problem = self._check_inputs(event.bucket, submission, status)
        if problem is not None:
            reject(status, problem)
            store.create(status)
            store.write_end(status)
            publish_claim()
            log.info("%s: rejected %s: %s", status.job, event.key, problem)
            return Outcome(event.key, "rejected", job=status.job, reason=problem)
        assert submission is not None
        status.provenance["submission_etag"] = head.etag
        for name in submission.datasets:
            status.datasets[name].reason = "waiting for a free slot"
        status.log(f"accepted {len(submission.datasets)} dataset(s); queued for launch")
        store.create(status)
        publish_claim()
        for name, key in submission.datasets.items():
            self.pending.append(
                DatasetTask(
                    bucket=event.bucket,
                    group=group,
                    job=status.job,
                    dataset=name,
                    data_key=key,
                    config_key=submission.configname,
                    record=record,
                    endpoint_url=self.endpoint_url,
                    region=self.region,
                )
            )
        self.pump()
        return Outcome(event.key, "started", job=status.job)

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
            },
        )
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

    # -- launching ---------------------------------------------------------------------------
    def pump(self) -> None:
        """Reap ended runners, then launch queued datasets while their analysis has room."""
        for finished in self.launcher.reap():
            self._settle_runner(finished)
        waiting: deque[DatasetTask] = deque()
        while self.pending:
            task = self.pending.popleft()
            cap = task.record.blueprint.limits.max_concurrent_jobs
            if self.launcher.active(task.bucket) >= cap:
                waiting.append(task)
                continue
            self._launch(task)
        self.pending = waiting

    def _launch(self, task: DatasetTask) -> None:
        """Claim the dataset in status.json, then start its runner: only one launch can win."""
        store = JobStore(self.storage, task.bucket)
        claimed = False

        def claim(status: JobStatus) -> None:
            nonlocal claimed
            ds = status.datasets[task.dataset]
            claimed = ds.state == State.QUEUED and ds.runner is None
            if claimed:
                ds.runner, ds.reason = f"{self.launcher.name}:starting", None

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
            if ds.runner == f"{self.launcher.name}:starting":
                ds.runner = runner
            status.log(f"{task.dataset}: launched on {runner}")

        store.update(task.group, task.job, launched)

    def recover(self) -> int:
        """Queue again the datasets an earlier dispatcher accepted but never launched.

        Runners that were already started run in their own sessions and finish on their own;
        only datasets still ``queued`` with no runner are picked up. Returns how many.
        """
        from .provision import provisioned_analyses

        found = 0
        for bucket in provisioned_analyses(self.storage):
            record = load_record(self.storage, bucket)
            if record is None:
                continue
            store = JobStore(self.storage, bucket)
            for group in record.blueprint.groups:
                prefix = f"{group.name}/results/"
                for job in self.storage.list_folders(bucket, prefix):
                    try:
                        status = store.read(group.name, job)
                    except (NcaasError, ValueError):
                        continue
                    if status.state.terminal:
                        continue
                    for name, ds in status.datasets.items():
                        if ds.state == State.QUEUED and ds.runner is None:
                            self.pending.append(
                                DatasetTask(
                                    bucket=bucket,
                                    group=group.name,
                                    job=job,
                                    dataset=name,
                                    data_key=ds.key,
                                    config_key=status.configname,
                                    record=record,
                                    endpoint_url=self.endpoint_url,
                                    region=self.region,
                                )
                            )
                            found += 1
        return found

    def _settle_runner(self, finished: Finished) -> None:
        """A runner that died without reporting leaves its dataset failed, never running."""
        task = finished.task
        store = JobStore(self.storage, task.bucket)

        def lost(status: JobStatus) -> None:
            ds = status.datasets[task.dataset]
            if ds.state.terminal:
                return
            ds.state, ds.finished = State.FAILED, utcnow()
            ds.reason = f"runner lost: {finished.detail}"
            status.log(f"{task.dataset}: runner {finished.runner} ended without a result")

        try:
            if not store.read(task.group, task.job).datasets[task.dataset].state.terminal:
                store.update(task.group, task.job, lost)
        except NcaasError as e:
            log.error(
                "%s: could not record the end of runner %s: %s", task.label, finished.runner, e
            )
