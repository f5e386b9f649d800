"""What a browser client of a stack needs (``ncaas-dev web``): analyses and groups, a group's
files and jobs, presigned multipart uploads and downloads, submissions, job status and logs.

Part of the public API: the web client's pages and streams ask this module, never the layout
or S3 directly. Keys come from ``layout`` and are checked with its ``check_group_key``; data
bytes never pass through this process: uploads and downloads are presigned URLs the browser
uses against S3 itself.
"""

from __future__ import annotations

import logging
import math
import os
import posixpath
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .. import presign
from ..analysis import provisioned_records
from ..aws import client as aws_client
from ..client import AnalysisClient, Submitted
from ..errors import NcaasError
from ..layout import (
    SUBMISSION_SUFFIX,
    InvalidKey,
    JobPaths,
    check_group_key,
    group_prefix,
    is_submission_key,
)
from ..local.provision import allow_browser_uploads
from ..settings import Settings, check_cloud_environment
from ..status import JobStatus
from ..storage import AccessDenied, NotFound, ObjectInfo, Storage
from .follow import LogTail

MiB = 1024**2
MAX_OBJECT = 5 * 1024**4  # S3's largest object
MAX_PARTS = 10_000
MIN_PART = 8 * MiB
UPLOAD_FOLDERS = ("inputs", "configs")
URL_SECONDS = 3600
CONFIG_MAX = 1 * MiB  # a config larger than this is not validated inline
log = logging.getLogger(__name__)

__all__ = [
    "CONFIG_MAX", "MAX_OBJECT", "Analysis", "Backend", "Forbidden", "LogTail", "NotVisible",
    "Settings", "Submitted", "Upload", "cognito_client", "open_backend", "part_size",
    "stack_settings", "submission_id",
]  # fmt: skip


def stack_settings(endpoint_url: str | None = None, cloud: bool = False) -> Settings:
    """Where the web client's stack is (``--cloud``: real AWS, its settings checked)."""
    if cloud:
        check_cloud_environment(os.environ, endpoint_url)
    return Settings.from_env(endpoint_url=endpoint_url, cloud=cloud)


def open_backend(settings: Settings) -> Backend:
    from ..aws import s3_client

    return Backend(settings, Storage(s3_client(settings), settings.endpoint_url))


def cognito_client(region: str, endpoint_url: str | None) -> Any:
    """Cognito's user-pool API, from the one client factory (LocalStack's keys locally)."""
    return aws_client(Settings(endpoint_url=endpoint_url, region=region), "cognito-idp")


class Forbidden(NcaasError):
    """A key outside the signed-in group's inputs/ and configs/ (HTTP 403)."""


class NotVisible(NcaasError):
    """An analysis or job the signed-in group may not see, or that does not exist (HTTP 404)."""


@dataclass(frozen=True)
class Analysis:
    bucket: str
    name: str
    description: str
    groups: dict[str, list[str]]


@dataclass(frozen=True)
class Upload:
    key: str
    upload_id: str
    part_size: int
    done: list[presign.PartInfo] = field(default_factory=list)


def part_size(size: int) -> int:
    """8 MiB, or more for a file that would need more than S3's 10,000 parts."""
    needed = math.ceil(size / MAX_PARTS)
    return max(MIN_PART, math.ceil(needed / MiB) * MiB)


def submission_id(key: str) -> str:
    return posixpath.basename(key)[: -len(SUBMISSION_SUFFIX)].rstrip("_")


class Backend:
    def __init__(self, settings: Settings, storage: Storage) -> None:
        self.settings = settings
        self.storage = storage
        self._analyses: tuple[float, dict[str, Analysis]] = (0.0, {})
        self._lock = threading.Lock()
        self._cors_done: set[str] = set()
        self._pool = ThreadPoolExecutor(max_workers=16)

    # -- analyses and groups ------------------------------------------------------------------
    def analyses(self, max_age: float = 5.0) -> dict[str, Analysis]:
        """Every analysis provisioned on the stack, by bucket (re-read every few seconds)."""
        with self._lock:
            stamp, cached = self._analyses
        if time.monotonic() - stamp < max_age:
            return cached
        found: dict[str, Analysis] = {}
        for bucket, record in provisioned_records(self.storage).items():
            bp = record.blueprint
            groups = {g.name: list(g.users) for g in bp.groups}
            found[bucket] = Analysis(bucket, bp.analysis, bp.description or "", groups)
        with self._lock:
            self._analyses = (time.monotonic(), found)
        return found

    def analysis(self, bucket: str, group: str) -> Analysis:
        found = self.analyses().get(bucket) or self.analyses(max_age=0).get(bucket)
        if found is None or group not in found.groups:
            raise NotVisible(f"no analysis {bucket!r} for group {group!r}")
        return found

    def client(self, bucket: str) -> AnalysisClient:
        return AnalysisClient(self.storage, bucket)

    # -- files a group uploaded ---------------------------------------------------------------
    def files(self, bucket: str, group: str, folder: str) -> list[ObjectInfo]:
        prefix = group_prefix(group, folder)
        return [o for o in self.storage.list_objects(bucket, prefix) if o.key != prefix]

    def check_key(
        self,
        group: str,
        key: object,
        folders: tuple[str, ...] = UPLOAD_FOLDERS,
        folder_ok: bool = False,
    ) -> str:
        """``key`` if it lies in ``group``'s own upload folders (with ``folder_ok``, a folder
        prefix ending in ``/`` too: a folder dataset); else Forbidden."""
        try:
            checked = check_group_key(key, group, "key", folder_ok=folder_ok)
        except InvalidKey as e:
            raise Forbidden(str(e)) from e
        lowered = checked.lower()
        if "%2f" in lowered or "%5c" in lowered:
            raise Forbidden(f"key {checked!r} holds an encoded slash")
        if checked.split("/")[1] not in folders:
            raise Forbidden(f"key {checked!r} is not in {group}/{' or '.join(folders)}/")
        return checked

    def upload_key(self, group: str, folder: str, name: str) -> str:
        if folder not in UPLOAD_FOLDERS:
            raise Forbidden(f"uploads go to inputs/ or configs/, not {folder!r}")
        return self.check_key(group, group_prefix(group, folder) + name)

    # -- presigned multipart uploads ------------------------------------------------------------
    def allow_browser(self, bucket: str, origin: str) -> None:
        """The bucket's CORS rule for this client's origin (once per bucket and process)."""
        if f"{bucket}\0{origin}" in self._cors_done:
            return
        try:
            allow_browser_uploads(self.storage, bucket, [origin])
        except AccessDenied as e:  # on AWS, deploy's template already allows the usual origins
            log.warning("could not set CORS on %s for %s: %s", bucket, origin, e)
        self._cors_done.add(f"{bucket}\0{origin}")

    def start_upload(self, bucket: str, key: str, size: int) -> Upload:
        """A new multipart upload, or the unfinished one for ``key`` with the parts it has."""
        if size > MAX_OBJECT:
            raise Forbidden(f"{size} bytes is over S3's 5 TiB object limit")
        upload_id = presign.unfinished_upload(self.storage, bucket, key)
        if upload_id is not None:
            done = presign.uploaded_parts(self.storage, bucket, key, upload_id)
            return Upload(key, upload_id, part_size(size), done)
        return Upload(key, presign.start_upload(self.storage, bucket, key), part_size(size))

    def sign_parts(
        self, bucket: str, key: str, upload_id: str, numbers: list[int]
    ) -> dict[int, str]:
        return {
            n: presign.part_url(self.storage, bucket, key, upload_id, n, URL_SECONDS)
            for n in numbers
            if 1 <= n <= MAX_PARTS
        }

    def complete(self, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]]) -> int:
        presign.complete_upload(self.storage, bucket, key, upload_id, parts)
        info = self.storage.head(bucket, key)
        return info.size if info else 0

    def abort(self, bucket: str, key: str, upload_id: str) -> None:
        presign.abort_upload(self.storage, bucket, key, upload_id)

    # -- submissions --------------------------------------------------------------------------
    def read_config(self, bucket: str, group: str, key: str) -> bytes:
        body, _ = self.storage.get_bytes(
            bucket, self.check_key(group, key, ("configs",)), CONFIG_MAX
        )
        return body

    def submit(self, bucket: str, group: str, data: list[str], config: str | None) -> Submitted:
        data = [self.check_key(group, k, ("inputs",), folder_ok=True) for k in data]
        config = self.check_key(group, config, ("configs",)) if config else None
        return self.client(bucket).submit(group, data, config)

    def submission(self, bucket: str, group: str, sub_id: str) -> tuple[Submitted, float] | None:
        """The submission, and when S3 got it (epoch seconds); None if there is none."""
        key = f"{group_prefix(group, 'submissions')}{sub_id}_{SUBMISSION_SUFFIX}"
        if not is_submission_key(key) or "/" in sub_id:
            return None
        info = self.storage.head(bucket, key)
        if info is None:
            return None
        return Submitted(key, info.etag), info.modified or 0.0

    def job_of(self, bucket: str, submitted: Submitted) -> str | None:
        return self.client(bucket).job_of(submitted)

    # -- jobs ---------------------------------------------------------------------------------
    def job_names(
        self, bucket: str, group: str, limit: int | None = None, before: str | None = None
    ) -> list[str]:
        """The group's job folders, newest first (the API's one order; a page as there)."""
        return self.client(bucket).job_names(group, limit, before)

    def statuses(self, bucket: str, group: str, jobs: list[str]) -> list[JobStatus | None]:
        client = self.client(bucket)

        def one(job: str) -> JobStatus | None:
            try:
                return client.status(group, job)
            except NcaasError:
                return None

        return list(self._pool.map(one, jobs))

    def status(self, bucket: str, group: str, job: str) -> JobStatus | None:
        """The job's status; None while its folder has no status yet; NotVisible if no folder."""
        paths = JobPaths(group, job)
        try:
            check_group_key(paths.status, group, "job")
        except InvalidKey as e:
            raise NotVisible(f"no job {job!r}") from e
        try:
            return self.client(bucket).status(group, job)
        except NcaasError:
            if self.storage.any_under(bucket, paths.root):
                return None
            raise NotVisible(f"no job {job!r} in group {group!r}") from None

    def finished(self, bucket: str, group: str, job: str) -> bool:
        return self.client(bucket).finished(group, job)

    def log_tail(self, bucket: str, group: str, job: str, dataset: str, offset: int) -> LogTail:
        """A dataset's log from ``offset`` on, followed as ``Job.watch`` follows it."""
        return LogTail(self.client(bucket), group, job, dataset, offset)

    def certificate(self, bucket: str, group: str, job: str) -> str:
        try:
            body, _ = self.storage.get_bytes(bucket, JobPaths(group, job).certificate)
        except NotFound:
            return ""
        return body.decode("utf-8", "replace")

    def job_files(self, bucket: str, group: str, job: str) -> list[tuple[str, int]]:
        """Every file of the job folder: (path relative to it, size)."""
        root = JobPaths(group, job).root
        return [
            (o.key[len(root) :], o.size)
            for o in self.storage.list_objects(bucket, root)
            if not o.key.endswith("/")
        ]

    def file_url(self, bucket: str, group: str, job: str, relative: str) -> str:
        """A presigned GET for one file of the job folder (the browser fetches it from S3)."""
        key = JobPaths(group, job).root + relative
        try:
            check_group_key(key, group, "file")
        except InvalidKey as e:
            raise Forbidden(str(e)) from e
        if self.storage.head(bucket, key) is None:
            raise NotVisible(f"no file {relative!r} in {job}")
        return presign.download_url(self.storage, bucket, key, URL_SECONDS)

    def download_commands(self, bucket: str, group: str, job: str) -> tuple[str, str]:
        """``ncaas-dev results …`` and ``aws s3 cp --recursive …`` for the whole job folder."""
        endpoint = self.settings.endpoint_url
        ncaas = f"ncaas-dev results {bucket} {job} --group {group}"
        aws = f"aws s3 cp --recursive s3://{bucket}/{JobPaths(group, job).root} ./{job}/"
        if endpoint:
            ncaas += f" --endpoint-url {endpoint}"
            aws += f" --endpoint-url {endpoint}"
        return ncaas, aws
