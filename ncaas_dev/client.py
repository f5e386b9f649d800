"""What a user does through S3, one step at a time: upload, submit, follow, download.

Used by the CLI's ``run``, ``submit``, ``jobs``, ``logs`` and ``results``; it talks only to
S3, exactly as a lab member without ncaas-dev would.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .errors import NcaasError, UsageError
from .layout import CANCEL_SUFFIX, JobPaths, group_prefix, pointed_job, submission_pointer_key
from .status import JobStatus
from .storage import AccessDenied, NotFound, Progress, Storage, key_part


@dataclass(frozen=True)
class Submitted:
    key: str
    etag: str


class AnalysisClient:
    def __init__(self, storage: Storage, analysis: str) -> None:
        self.storage = storage
        self.bucket = analysis

    def require_bucket(self) -> None:
        if not self.storage.bucket_exists(self.bucket):
            raise UsageError(
                f"analysis '{self.bucket}' is not on this stack (no bucket s3://{self.bucket})",
                hint="run `ncaas-dev up` or `ncaas-dev run BLUEPRINT_DIR` first",
            )

    def upload(self, path: Path, group: str, folder: str, progress: Progress | None = None) -> str:
        if path.is_dir() and folder == "inputs":
            return self.upload_folder(path, group)
        if not path.is_file():
            raise UsageError(
                f"{path}: no such file", hint="check the path given to --data/--config"
            )
        key = group_prefix(group, folder) + path.name
        self.storage.upload_file(path, self.bucket, key, progress)
        return key

    def upload_folder(self, path: Path, group: str) -> str:
        """A local folder as one dataset (NeuroCAAS's folder ``dataname``): every regular file
        under it, sub-paths kept, to ``{group}/inputs/{folder name}/``; the prefix is the key.
        The prefix then mirrors the folder: objects a former upload left there, which the
        folder no longer holds, are removed, so the dataset is exactly the folder."""
        files = [p for p in sorted(path.rglob("*")) if p.is_file() and not p.is_symlink()]
        if not files:
            raise UsageError(
                f"{path}: the folder is empty (no files under it)",
                hint="a folder dataset needs at least one file",
            )
        prefix = group_prefix(group, "inputs") + path.resolve().name + "/"
        count = self.storage.upload_tree(path, self.bucket, prefix)
        wanted = {prefix + key_part(p.relative_to(path)) for p in files}
        for stale in self.storage.list_objects(self.bucket, prefix):
            if stale.key not in wanted:
                self.storage.delete(self.bucket, stale.key)
        if count == 0:  # every file vanished between the listing and the upload
            raise UsageError(f"{path}: no file could be uploaded from the folder")
        return prefix

    def submit(
        self,
        group: str,
        data_keys: list[str],
        config_key: str | None,
        timestamp: str | None = None,
    ) -> Submitted:
        stamp = timestamp or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        doc: dict[str, object] = {"dataname": data_keys[0] if len(data_keys) == 1 else data_keys}
        # Only a timestamp the user chose: with `compat: neurocaas` a taken one is rejected, and
        # two submissions within a second must not be. Without one the dispatcher names the job.
        if timestamp:
            doc["timestamp"] = timestamp
        if config_key:
            doc["configname"] = config_key
        key = f"{group_prefix(group, 'submissions')}{stamp}-{secrets.token_hex(3)}_submit.json"
        etag = self.storage.put_json(self.bucket, key, doc)
        return Submitted(key, etag)

    def cancel(
        self, group: str, job: str, datasets: list[str] | None = None, by: str | None = None
    ) -> str:
        """Write a cancel request for the group's job (or only ``datasets``); return its key.
        The dispatcher does the rest (``dispatch/cancel.py``)."""
        doc: dict[str, object] = {"job": job}
        if datasets:
            doc["datasets"] = list(datasets)
        if by:
            doc["by"] = by
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        key = f"{group_prefix(group, 'submissions')}{stamp}-{secrets.token_hex(3)}_{CANCEL_SUFFIX}"
        self.storage.put_json(self.bucket, key, doc)
        return key

    def job_of(self, submitted: Submitted) -> str | None:
        """The job folder the dispatcher made for this submission, once it has."""
        # The pointer the dispatcher leaves beside the submission, once its job folder exists.
        try:
            doc, _ = self.storage.get_json(self.bucket, submission_pointer_key(submitted.key))
        except NotFound:
            return None
        except (AccessDenied, ValueError):  # a policy without the pointers; a garbled pointer
            return self._job_in_results(submitted)
        return pointed_job(doc, submitted.key, submitted.etag)

    def _job_in_results(self, submitted: Submitted) -> str | None:
        """The job whose status names this submission (newest folders first)."""
        group = submitted.key.split("/", 1)[0]
        for job in self.job_names(group):
            try:
                doc, _ = self.storage.get_json(self.bucket, JobPaths(group, job).status)
            except (NotFound, AccessDenied, ValueError):  # unreadable: not this job
                continue
            if isinstance(doc, dict) and doc.get("submission") == submitted.key:
                return job
        return None

    def status(self, group: str, job: str) -> JobStatus:
        try:
            doc, _ = self.storage.get_json(self.bucket, JobPaths(group, job).status)
        except NotFound as e:
            raise UsageError(
                f"no job {job} in group {group} of {self.bucket}",
                hint="list jobs with `ncaas-dev jobs`",
            ) from e
        except json.JSONDecodeError as e:
            raise NcaasError(f"status of {job} is not readable JSON") from e
        return JobStatus.model_validate(doc)

    def job_names(
        self, group: str, limit: int | None = None, before: str | None = None
    ) -> list[str]:
        """The group's job folders, newest first: the one order of every listing (CLI, API,
        web). Job folder names start with their time, so this costs one LIST per 1000 jobs
        and no status read. ``before``: only the jobs after that one in this order (the next
        page); ``limit``: at most that many."""
        names = sorted(self.storage.list_folders(self.bucket, group_prefix(group, "results")))
        names.reverse()
        if before is not None:
            names = [n for n in names if n < before]
        return names if limit is None else names[:limit]

    def jobs(
        self, group: str, limit: int | None = None, before: str | None = None
    ) -> list[JobStatus]:
        """The statuses of ``job_names(...)`` (read 8 at a time); a job folder without a
        readable status yet is left out."""
        from concurrent.futures import ThreadPoolExecutor

        def one(job: str) -> JobStatus | None:
            try:
                return self.status(group, job)
            except NcaasError:
                return None

        names = self.job_names(group, limit, before)
        with ThreadPoolExecutor(max_workers=8) as pool:
            return [s for s in pool.map(one, names) if s is not None]

    def log_since(self, group: str, job: str, dataset: str, offset: int) -> bytes:
        """Bytes of a dataset's log after ``offset`` (the log object is rewritten as it grows)."""
        return self.storage.read_from(self.bucket, JobPaths(group, job).log(dataset), offset)

    def finished(self, group: str, job: str) -> bool:
        try:
            return self.storage.head(self.bucket, JobPaths(group, job).end) is not None
        except AccessDenied:  # S3 answers 403, not 404, to a user who may not list the prefix
            return False

    def download(self, group: str, job: str, out: Path) -> Path:
        target = out / job
        count = self.storage.download_tree(self.bucket, JobPaths(group, job).root, target)
        if count == 0:
            raise UsageError(f"job {job} of group {group} has no files yet")
        return target
