"""Admission: one submission event in, one job folder out (accepted, or rejected with a reason).

Admission validates the submission, checks its inputs and the group's budget, and creates the
job folder; it never launches anything. What it accepted is handed to the scheduler as an
:class:`Admitted` with the job's status. It never raises for a user's bad input: the answer
goes into the job folder as ``rejected``.

Admissions of different submissions may run in parallel threads. The group's ledger is the one
record they all write, so their reservations are written together (``ledger.py``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from .. import __version__
from ..analysis import AnalysisRecord
from ..budget import Budget, Projection, ReservationClash, ReservationRequest
from ..compat import neurocaas
from ..errors import NcaasError
from ..events import ObjectCreated
from ..jobstore import JobStore
from ..layout import is_folder_key, is_submission_key, name_claim_key
from ..pricing import UnknownInstanceType, launcher_price
from ..status import DatasetStatus, JobStatus, reject
from ..storage import NotFound, PreconditionFailed, Storage
from ..submission import MAX_SUBMISSION_BYTES, InvalidSubmission, Submission, parse_submission
from . import options
from .inputs import BatchInputs
from .ledger import ReservationBatcher
from .records import BatchRecords
from .submitted import SubmissionClaims

log = logging.getLogger(__name__)
WAITING = "waiting for a free slot"


@dataclass
class Outcome:
    """What the dispatcher did with one event (for logs, tests and the CLI)."""

    key: str
    action: str  # ignored | duplicate | rejected | started | error
    job: str | None = None
    reason: str | None = None


@dataclass
class Admitted:
    """An admission's outcome and, when datasets wait to launch, the job they belong to."""

    outcome: Outcome
    bucket: str = ""
    record: AnalysisRecord | None = None
    status: JobStatus | None = None


@dataclass
class Admission:
    storage: Storage
    launcher_name: str
    owner: str

    def __post_init__(self) -> None:
        self._reservations = ReservationBatcher(self.storage)
        self._claims = SubmissionClaims(self.storage, self.owner)
        self._records = BatchRecords(self.storage)
        self._inputs = BatchInputs(self.storage)

    def admit(self, event: ObjectCreated, received: float | None = None) -> Admitted:
        """Admit one event; a failure here is logged and answered, never raised.
        ``received``: when its batch arrived (``time.monotonic()``), so the batch's
        admissions share one read of the analysis's record."""
        try:
            return self._admit(event, received)
        except NcaasError as e:
            log.error("event %s/%s: %s", event.bucket, event.key, e)
            return Admitted(Outcome(event.key, "error", reason=str(e)))
        except Exception as e:  # one event's bug must not stop the events behind it
            log.exception("event %s/%s: unexpected failure", event.bucket, event.key)
            return Admitted(Outcome(event.key, "error", reason=f"{type(e).__name__}: {e}"))

    # -- the event ---------------------------------------------------------------------------
    def _admit(self, event: ObjectCreated, received: float | None) -> Admitted:
        if not is_submission_key(event.key):
            return Admitted(Outcome(event.key, "ignored", reason="not a submission key"))
        record = self._records.get(event.bucket, received)
        if record is None:
            reason = f"bucket {event.bucket} not provisioned"
            return Admitted(Outcome(event.key, "ignored", reason=reason))
        # One read gives the body and the version it belongs to (no separate HEAD).
        try:
            raw, etag = self.storage.get_bytes(
                event.bucket, event.key, max_bytes=MAX_SUBMISSION_BYTES
            )
        except NotFound:
            reason = "submission no longer exists"
            return Admitted(Outcome(event.key, "ignored", reason=reason))
        group = event.key.split("/", 1)[0]
        taken = self._claims.take(event.bucket, event.key, etag)
        if taken is None:
            reason = "this submission was already handled"
            return Admitted(Outcome(event.key, "duplicate", reason=reason))
        store = JobStore(self.storage, event.bucket)
        if taken == "retaken":
            existing = self._claims.job_of_abandoned(store, group, event.key, etag)
            if existing is not None:
                # The dead claimer had created the job folder but not yet published it (nor,
                # perhaps, indexed it as open).
                if not existing.state.terminal:
                    store.mark_open(group, existing.job)
                self._claims.publish(event.bucket, event.key, etag, existing.job)
                outcome = Outcome(event.key, "started", job=existing.job, reason="recovered")
                return Admitted(outcome, event.bucket, record, existing)
        submission: Submission | None = None
        problem: str | None = None
        try:
            submission = parse_submission(raw, group)
        except InvalidSubmission as e:
            problem = str(e)
        status, taken_name = self._open_job(store, group, event.key, etag, record, submission)
        status.provenance["submission_etag"] = etag
        problem = problem or taken_name
        if problem is None and record.blueprint.group(group) is None:
            problem = (
                f"group '{group}' is not a user of analysis '{record.blueprint.analysis}'; "
                "ask its developer to add your group to the blueprint"
            )
        if problem is None and submission is not None:
            problem = options.instance_type(record.blueprint, submission).problem
        if problem is None and submission is not None:
            problem = self._check_inputs(event.bucket, record, submission, status, received)
        if problem is None and submission is not None:
            problem = self._reserve_budget(event.bucket, record, status, submission)
        if problem is not None:
            reject(status, problem)
            self._create(store, status)
            store.write_end(status)
            self._claims.publish(event.bucket, event.key, etag, status.job)
            log.info("%s: rejected %s: %s", status.job, event.key, problem)
            return Admitted(Outcome(event.key, "rejected", job=status.job, reason=problem))
        assert submission is not None
        cap = record.blueprint.limits.max_concurrent_jobs
        for name in submission.datasets:
            status.datasets[name].reason = f"{WAITING} (limits.max_concurrent_jobs is {cap})"
        status.log(f"accepted {len(submission.datasets)} dataset(s); queued for launch")
        self._create(store, status, budget_keys=list(submission.datasets))
        self._claims.publish(event.bucket, event.key, etag, status.job)
        return Admitted(Outcome(event.key, "started", job=status.job), event.bucket, record, status)

    # -- the job folder ----------------------------------------------------------------------
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
        base = taken if neurocaas.is_compat(status) else "_".join(taken.split("_", 2)[:2])
        status.job = f"{base}_{secrets.token_hex(3)}"
        status.log(f"{taken} already exists; this job uses {status.job}")
        return taken

    def _open_job(
        self,
        store: JobStore,
        group: str,
        key: str,
        etag: str,
        record: AnalysisRecord,
        submission: Submission | None,
    ) -> tuple[JobStatus, str | None]:
        """A status for a fresh job folder; a folder that exists is never reused. In
        NeuroCAAS's layout a client computes the folder from its timestamp, so a timestamp
        already taken is no name to move away from: the answer is a rejection, written to a
        folder of its own (with the reason)."""
        compat = record.blueprint.compat == neurocaas.NEUROCAAS
        stamp = submission.timestamp if submission and submission.timestamp else None
        now = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        if compat:
            base = neurocaas.job_name(record.blueprint.analysis, stamp or now)
        else:
            base = f"job_{stamp or now}"
        job = base
        problem: str | None = None
        if (
            compat
            and stamp is not None
            and (not self._take_name(store, group, base, key, etag) or store.exists(group, base))
        ):
            job = neurocaas.duplicate_name(base)
            problem = (
                f"timestamp {stamp!r} is already taken: job folder {base} belongs to "
                "another submission; submit again with a new timestamp"
            )
        # A folder that exists is found when its status.json is created (If-None-Match), and
        # the job then moves to a fresh name (_create): no listing for the common case.
        chosen = options.instance_type(record.blueprint, submission) if submission else None
        instance_type = str(chosen.value) if chosen and chosen.value else None
        instance_type = instance_type or record.blueprint.cloud.instance_type
        slurm: dict[str, int] = {}
        if self.launcher_name == "slurm":  # no instance runs it: it is costed by its cores
            instance_type = None
            slurm["slurm_cpus"] = math.ceil(record.blueprint.resources.cpus)
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
                "launcher": self.launcher_name,
                "instance_type": instance_type,
                **slurm,
            },
        )
        with contextlib.suppress(UnknownInstanceType):  # refused by the budget check
            priced = launcher_price(record.blueprint, self.launcher_name, instance_type)[1]
            status.provenance["price_usd_per_hour"] = priced
        status.log(f"received submission {key}")
        if compat:
            neurocaas.mark_compat(status)
        if submission is not None:
            for name, data_key in submission.datasets.items():
                status.datasets[name] = DatasetStatus(key=data_key)
        return status, problem

    def _take_name(self, store: JobStore, group: str, job: str, key: str, etag: str) -> bool:
        """Claim a job folder's name for this submission: the first writer wins it; the same
        submission (a retaken claim) finds it its own."""
        claim = name_claim_key(group, job)
        doc = {"submission": key, "etag": etag}
        try:
            self.storage.put_json(store.bucket, claim, doc, if_none_match=True)
            return True
        except PreconditionFailed:
            pass
        try:
            held, _ = self.storage.get_json(store.bucket, claim)
        except NotFound:
            return False
        return isinstance(held, dict) and held.get("submission") == key and held.get("etag") == etag

    # -- checks ------------------------------------------------------------------------------
    def _check_inputs(
        self,
        bucket: str,
        record: AnalysisRecord,
        submission: Submission,
        status: JobStatus,
        received: float | None,
    ) -> str | None:
        missing: list[str] = []
        inputs: dict[str, str] = {}
        config_size = 0
        for key in (*submission.datanames, *filter(None, [submission.configname])):
            if is_folder_key(key):
                limit = record.blueprint.limits.max_files_per_dataset
                checked = options.folder(self.storage, bucket, key, limit)
                if checked.problem:
                    return checked.problem
                inputs[key] = str(checked.value)
                continue
            info = self._inputs.head(bucket, key, received)
            if info is None:
                missing.append(key)
            else:
                inputs[key] = info.etag
                config_size = info.size if key == submission.configname else config_size
        if missing:
            shown = ", ".join(missing[:5]) + (
                f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            )
            where = ", ".join(f"s3://{bucket}/{key}" for key in missing[:5])
            it = "it" if len(missing) == 1 else "them"
            return f"input not found: {shown}; upload {it} to {where} first, then submit again"
        status.provenance["inputs"] = inputs
        if submission.configname and 0 < config_size <= options.MAX_CONFIG_BYTES:
            return self._duration(bucket, record, submission.configname, status)
        return None

    def _duration(
        self, bucket: str, record: AnalysisRecord, config: str, status: JobStatus
    ) -> str | None:
        """Honour the config's ``__duration__`` (NeuroCAAS's per-job time limit)."""
        try:
            raw, _ = self.storage.get_bytes(bucket, config, max_bytes=options.MAX_CONFIG_BYTES)
        except NotFound:
            return f"input not found: {config} (deleted while it was checked); upload it again"
        timeout = record.blueprint.run.timeout
        checked = options.duration(raw, config, timeout)
        if checked.problem or checked.value is None:
            return checked.problem
        status.provenance["timeout_seconds"] = checked.value
        capped = " (capped at run.timeout)" if checked.value == timeout else ""
        status.log(f"config {options.DURATION}: timeout {checked.value} s per dataset{capped}")
        return None

    def _reserve_budget(
        self, bucket: str, record: AnalysisRecord, status: JobStatus, submission: Submission
    ) -> str | None:
        """Reserve the submission's worst-case cost in the group's ledger, or say why not."""
        blueprint = record.blueprint
        chosen = str(status.provenance.get("instance_type") or blueprint.cloud.instance_type)
        try:
            instance_type, price = launcher_price(blueprint, self.launcher_name, chosen)
        except UnknownInstanceType as e:
            return (
                f"cannot check the budget: {e.message}; ask the analysis's developer to use "
                "a listed cloud.instance_type or add its price to the table"
            )
        projection = Projection(
            datasets=len(submission.datasets),
            instance_type=instance_type,
            price_per_hour=price,
            timeout_seconds=int(status.provenance.get("timeout_seconds", blueprint.run.timeout)),
        )
        store = JobStore(self.storage, bucket)
        while True:
            request = ReservationRequest(
                status.job,
                list(submission.datasets),
                projection,
                blueprint.limits.max_cost_usd,
                submission=status.submission,
            )
            try:
                problem = self._reservations.reserve(bucket, status.group, request)
                break
            except ReservationClash:
                self._rename(store, status)
        if problem is None:
            status.log(f"budget: reserved up to ${projection.usd:.4f} ({projection.describe()})")
        return problem
