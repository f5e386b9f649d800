"""S3 adapter: the only module that talks to S3. Transfers stream; errors are translated once."""

from __future__ import annotations

import base64
import glob
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from .errors import ServiceUnavailable, StorageError
from .processes import alive

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# 16 MiB parts, 4 at a time: memory stays near 64 MiB whatever the file's size.
TRANSFER = TransferConfig(
    multipart_threshold=16 * 1024**2, multipart_chunksize=16 * 1024**2, max_concurrency=4
)
Progress = Callable[[int], None]
# Below this, one plain request moves a file: the transfer manager's extra HEAD and threads
# cost more than they save (most configs, small datasets, every status and log file).
SMALL_FILE = 8 * 1024**2
# The process's umask, read once (reading it means setting it: not safe once threads run).
# A downloaded file gets the mode a plain `open` would give it, not mkstemp's 0600: the
# analysis reads its inputs as another user.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


class PreconditionFailed(StorageError):
    """A conditional write lost: the object exists (If-None-Match) or changed (If-Match)."""


class AccessDenied(StorageError):
    """403: the credentials may not do this (for a user's own keys, also: no such object)."""


class NotFound(StorageError):
    """The object or bucket does not exist."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    modified: float = 0.0  # epoch seconds of LastModified (listings and ``head``; 0 unknown)


def _listed(entry: Any) -> ObjectInfo:
    """An object as a listing describes it."""
    etag, modified = entry["ETag"].strip('"'), entry["LastModified"].timestamp()
    return ObjectInfo(key=entry["Key"], size=entry["Size"], etag=etag, modified=modified)


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


# The IAM action each S3 operation needs, so a refusal names what a policy must allow.
IAM_ACTIONS = {
    "ListObjectsV2": "s3:ListBucket",
    "ListObjects": "s3:ListBucket",
    "HeadBucket": "s3:ListBucket",
    "HeadObject": "s3:GetObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "CopyObject": "s3:PutObject",
}
_S3_URL = re.compile(r"s3://([^/\s]+)/?(\S*)")


def denied_action(operation: str, what: str) -> str:
    """Which IAM action on which resource a refused call needed, from the operation and the
    ``s3://bucket/key`` its description names: "s3:ListBucket on arn:aws:s3:::b (prefix p)"."""
    action = IAM_ACTIONS.get(operation, f"s3:{operation}")
    where = _S3_URL.search(what)
    if where is None:
        return action
    bucket, key = where.groups()
    if action == "s3:ListBucket":
        return f"{action} on arn:aws:s3:::{bucket}" + (f" (prefix {key!r})" if key else "")
    return f"{action} on arn:aws:s3:::{bucket}/{key}"


@contextmanager
def translated(what: str, endpoint: str | None) -> Iterator[None]:
    """Turn botocore errors into ncaas errors that say what failed and what to do."""
    try:
        yield
    except ClientError as e:
        code = _code(e)
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("PreconditionFailed", "ConditionalRequestConflict") or status == 412:
            raise PreconditionFailed(f"{what}: precondition failed") from e
        if code in ("NoSuchKey", "NoSuchBucket", "404", "NotFound") or status == 404:
            raise NotFound(f"{what}: not found") from e
        if code in ("AccessDenied", "403", "Forbidden") or status == 403:
            needed = denied_action(e.operation_name, what)
            raise AccessDenied(
                f"{what}: access denied: {needed} is not allowed to these credentials",
                hint="your credentials may not reach this key",
            ) from e
        raise StorageError(f"{what}: {code or 'error'}: {e}") from e
    except EndpointConnectionError as e:
        where = endpoint or "AWS"
        raise ServiceUnavailable(
            f"LocalStack does not answer at {where}" if endpoint else f"cannot reach {where}",
            hint="start it with `ncaas-dev up`" if endpoint else "check your network",
        ) from e
    except BotoCoreError as e:
        raise StorageError(f"{what}: {e}") from e


def key_part(relative: Path) -> str:
    """A relative path as key text; a name that is not UTF-8 keeps its place with U+FFFD."""
    raw = os.fsencode(relative.as_posix())
    return raw.decode("utf-8", "replace")


def remove_abandoned_parts(path: Path) -> int:
    """Delete ``.part`` files of downloads to ``path`` whose process is gone."""
    removed = 0
    prefix = f".{path.name}."
    for candidate in path.parent.glob(f".{glob.escape(path.name)}.*.part*"):
        pid = candidate.name[len(prefix) :].split(".", 1)[0]
        if pid.isdigit() and not alive(int(pid)):
            with suppress(FileNotFoundError):
                candidate.unlink()
                removed += 1
    return removed


class Storage:
    def __init__(self, s3: S3Client, endpoint: str | None = None) -> None:
        self.s3 = s3
        self.endpoint = endpoint

    def _t(self, what: str) -> Any:
        return translated(what, self.endpoint)

    # -- buckets -----------------------------------------------------------------------------
    def ensure_bucket(self, bucket: str, region: str) -> None:
        with self._t(f"create bucket {bucket}"):
            try:
                self.s3.head_bucket(Bucket=bucket)
                return
            except ClientError as e:
                if _code(e) not in ("404", "NoSuchBucket", "NotFound"):
                    raise
            args: dict[str, Any] = {"Bucket": bucket}
            if region != "us-east-1":
                args["CreateBucketConfiguration"] = {"LocationConstraint": region}
            self.s3.create_bucket(**args)

    def bucket_exists(self, bucket: str) -> bool:
        try:
            with self._t(f"s3://{bucket}"):
                self.s3.head_bucket(Bucket=bucket)
            return True
        except NotFound:
            return False

    # -- small objects -----------------------------------------------------------------------
    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        try:
            with self._t(f"s3://{bucket}/{key}"):
                meta = self.s3.head_object(Bucket=bucket, Key=key)
        except NotFound:
            return None
        etag, modified = meta["ETag"].strip('"'), meta["LastModified"].timestamp()
        return ObjectInfo(key=key, size=meta["ContentLength"], etag=etag, modified=modified)

    def sha256_of(self, bucket: str, key: str) -> str | None:
        """The object's SHA-256 as S3 computed it when stored (base64), None if S3 has none or
        there is no such object: what an upload with ``sha256=`` asked S3 to check."""
        try:
            with self._t(f"s3://{bucket}/{key}"):
                meta = self.s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        except NotFound:
            return None
        return meta.get("ChecksumSHA256")

    def get_bytes(self, bucket: str, key: str, max_bytes: int | None = None) -> tuple[bytes, str]:
        """Object body and ETag; reads at most ``max_bytes + 1`` bytes so a huge file is cheap."""
        with self._t(f"s3://{bucket}/{key}"):
            args: dict[str, Any] = {"Bucket": bucket, "Key": key}
            if max_bytes is not None:
                args["Range"] = f"bytes=0-{max_bytes}"
            obj = self.s3.get_object(**args)
            return obj["Body"].read(), obj["ETag"].strip('"')

    def read_from(self, bucket: str, key: str, offset: int) -> bytes:
        """The object's bytes after ``offset``; empty if it is missing or no longer."""
        try:
            with self._t(f"s3://{bucket}/{key}"):
                reply = self.s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={offset}-")
        except NotFound:
            return b""
        except StorageError as e:
            if isinstance(e.__cause__, ClientError) and _code(e.__cause__) == "InvalidRange":
                return b""
            raise
        return bytes(reply["Body"].read())

    def put_bytes(
        self,
        bucket: str,
        key: str,
        body: bytes,
        *,
        content_type: str = "application/octet-stream",
        if_none_match: bool = False,
        if_match: str | None = None,
        verified: bool = False,
        sha256: str | None = None,
    ) -> str:
        """Write ``body``; ``verified``: S3 checks it against its MD5 and refuses a changed one;
        ``sha256`` (base64): S3 checks that one and keeps it (``sha256_of``)."""
        args: dict[str, Any] = {
            "Bucket": bucket,
            "Key": key,
            "Body": body,
            "ContentType": content_type,
        }
        if verified:
            digest = hashlib.md5(body, usedforsecurity=False).digest()
            args["ContentMD5"] = base64.b64encode(digest).decode()
        if sha256:
            args["ChecksumSHA256"] = sha256
        if if_none_match:
            args["IfNoneMatch"] = "*"
        if if_match is not None:
            args["IfMatch"] = f'"{if_match}"'
        with self._t(f"write s3://{bucket}/{key}"):
            return str(self.s3.put_object(**args)["ETag"]).strip('"')

    def put_text(self, bucket: str, key: str, text: str) -> str:
        return self.put_bytes(bucket, key, text.encode(), content_type="text/plain; charset=utf-8")

    def get_json(self, bucket: str, key: str) -> tuple[Any, str]:
        body, etag = self.get_bytes(bucket, key)
        return json.loads(body), etag

    def put_json(self, bucket: str, key: str, doc: Any, **conditions: Any) -> str:
        body = json.dumps(doc, indent=2).encode()
        return self.put_bytes(bucket, key, body, content_type="application/json", **conditions)

    def delete(self, bucket: str, key: str) -> None:
        """Delete one object; deleting one that does not exist is not an error (S3's rule)."""
        with self._t(f"delete s3://{bucket}/{key}"):
            self.s3.delete_object(Bucket=bucket, Key=key)

    def list_objects(
        self, bucket: str, prefix: str, start_after: str | None = None
    ) -> list[ObjectInfo]:
        """The objects under ``prefix`` in key order (only those after ``start_after``)."""
        found: list[ObjectInfo] = []
        with self._t(f"list s3://{bucket}/{prefix}"):
            for page in self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix, StartAfter=start_after or ""
            ):
                found += [_listed(o) for o in page.get("Contents", [])]
        return found

    def list_page(
        self, bucket: str, prefix: str, start_after: str, max_keys: int = 1000
    ) -> tuple[list[ObjectInfo], bool]:
        """One page of the objects directly in the folder ``prefix`` after ``start_after``
        (not in its sub-folders), and whether more follow."""
        with self._t(f"list s3://{bucket}/{prefix}"):
            reply = self.s3.list_objects_v2(
                Bucket=bucket,
                Prefix=prefix,
                Delimiter="/",
                StartAfter=start_after,
                MaxKeys=max_keys,
            )
        return [_listed(o) for o in reply.get("Contents", [])], bool(reply.get("IsTruncated"))

    def list_up_to(self, bucket: str, prefix: str, limit: int) -> list[ObjectInfo]:
        """The objects under ``prefix``, but no more than ``limit`` + 1 (enough to tell that
        there are more than ``limit`` without listing them all)."""
        found: list[ObjectInfo] = []
        with self._t(f"list s3://{bucket}/{prefix}"):
            for page in self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix, PaginationConfig={"MaxItems": limit + 1}
            ):
                found += [_listed(o) for o in page.get("Contents", [])]
        return found[: limit + 1]

    def any_under(self, bucket: str, prefix: str) -> bool:
        """Whether any object's key starts with ``prefix`` (one request, however many)."""
        with self._t(f"list s3://{bucket}/{prefix}"):
            reply = self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
        return bool(reply.get("KeyCount", len(reply.get("Contents", []))))

    def list_folders(self, bucket: str, prefix: str) -> list[str]:
        names: list[str] = []
        with self._t(f"list s3://{bucket}/{prefix}"):
            for page in self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix, Delimiter="/"
            ):
                names += [
                    p["Prefix"][len(prefix) :].rstrip("/") for p in page.get("CommonPrefixes", [])
                ]
        return names

    # -- streamed transfers ------------------------------------------------------------------
    def upload_file(
        self, path: Path, bucket: str, key: str, progress: Progress | None = None
    ) -> str:
        """Upload ``path``, checked by S3 (a small file: its MD5; a large one: its size)."""
        size = path.stat().st_size
        if size <= SMALL_FILE:
            body = path.read_bytes()
            if len(body) != size:
                raise StorageError(f"{path} changed while it was being uploaded")
            etag = self.put_bytes(bucket, key, body, verified=True)
            if progress:
                progress(size)
            return etag
        with self._t(f"upload {path} to s3://{bucket}/{key}"):
            self.s3.upload_file(str(path), bucket, key, Config=TRANSFER, Callback=progress)
        info = self.head(bucket, key)
        if info is None or info.size != size:
            raise StorageError(f"upload of {path} to s3://{bucket}/{key} did not complete")
        return info.etag

    def download_file(
        self, bucket: str, key: str, path: Path, progress: Progress | None = None
    ) -> None:
        """Download next to ``path`` and rename at the end: never a half file that looks whole.

        The hidden ``.{name}.{pid}.*.part`` file names its process, so the next download to
        the same place removes what a killed one left behind. A small object comes in the one
        GET that also says its size; a large one in parallel ranged parts.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_abandoned_parts(path)
        fd, tmp = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".part"
        )
        os.close(fd)
        try:
            with self._t(f"download s3://{bucket}/{key}"):
                reply = self.s3.get_object(Bucket=bucket, Key=key)
                if reply["ContentLength"] <= SMALL_FILE:
                    body = reply["Body"].read()
                    Path(tmp).write_bytes(body)
                    os.chmod(tmp, 0o666 & ~_UMASK)
                    if progress:
                        progress(len(body))
                else:
                    reply["Body"].close()  # too big for one stream: parts, four at a time
                    self.s3.download_file(bucket, key, tmp, Config=TRANSFER, Callback=progress)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def upload_tree(self, folder: Path, bucket: str, prefix: str) -> int:
        """Upload the regular files under ``folder`` (symlinks are not followed)."""
        count = 0
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.is_symlink():
                self.upload_file(path, bucket, prefix + key_part(path.relative_to(folder)))
                count += 1
        return count

    def download_tree(self, bucket: str, prefix: str, folder: Path) -> int:
        objects = self.list_objects(bucket, prefix)
        wanted = []
        for obj in objects:
            relative = obj.key[len(prefix) :]
            if not relative or relative.endswith("/") or ".." in relative.split("/"):
                continue
            wanted.append((obj.key, folder / relative))
        with ThreadPoolExecutor(max_workers=8) as pool:  # a job folder is many small files
            list(pool.map(lambda item: self.download_file(bucket, *item), wanted))
        return len(objects)
