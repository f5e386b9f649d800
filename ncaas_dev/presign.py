"""What a browser does to S3 itself, with URLs signed here: multipart uploads (started, resumed,
completed, aborted here; each part PUT by the browser to a presigned URL) and downloads by
presigned GET. A sibling of ``storage.py``, in its layer; errors translated the same way."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .storage import Storage, translated


@dataclass(frozen=True)
class PartInfo:
    number: int
    etag: str
    size: int


def unfinished_upload(storage: Storage, bucket: str, key: str) -> str | None:
    """The id of the newest multipart upload to exactly ``key`` still open, if any."""
    with translated(f"upload s3://{bucket}/{key}", storage.endpoint):
        pending = storage.s3.list_multipart_uploads(Bucket=bucket, Prefix=key).get("Uploads", [])
    pending = [u for u in pending if u.get("Key") == key]
    return str(max(pending, key=lambda u: u["Initiated"])["UploadId"]) if pending else None


def start_upload(storage: Storage, bucket: str, key: str) -> str:
    with translated(f"upload s3://{bucket}/{key}", storage.endpoint):
        return str(storage.s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"])


def uploaded_parts(storage: Storage, bucket: str, key: str, upload_id: str) -> list[PartInfo]:
    parts: list[PartInfo] = []
    with translated(f"parts of s3://{bucket}/{key}", storage.endpoint):
        pages = storage.s3.get_paginator("list_parts").paginate(
            Bucket=bucket, Key=key, UploadId=upload_id
        )
        for page in pages:
            parts += [
                PartInfo(p["PartNumber"], p["ETag"], p["Size"]) for p in page.get("Parts", ())
            ]
    return parts


def part_url(
    storage: Storage, bucket: str, key: str, upload_id: str, number: int, seconds: int
) -> str:
    """A URL the browser PUTs part ``number`` to, valid for ``seconds``."""
    params = {"Bucket": bucket, "Key": key, "UploadId": upload_id, "PartNumber": number}
    return str(storage.s3.generate_presigned_url("upload_part", Params=params, ExpiresIn=seconds))


def complete_upload(
    storage: Storage, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]]
) -> None:
    with translated(f"complete s3://{bucket}/{key}", storage.endpoint):
        storage.s3.complete_multipart_upload(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={
                "Parts": [{"PartNumber": n, "ETag": etag} for n, etag in sorted(parts)]
            },
        )


def abort_upload(storage: Storage, bucket: str, key: str, upload_id: str) -> None:
    with translated(f"abort s3://{bucket}/{key}", storage.endpoint):
        storage.s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)


def download_url(storage: Storage, bucket: str, key: str, seconds: int) -> str:
    """A presigned GET of a result file, answered as ``download_params`` says (figures and
    text inline, anything that could render as HTML as a download)."""
    params: dict[str, Any] = {"Bucket": bucket, "Key": key, **download_params(key)}
    return str(storage.s3.generate_presigned_url("get_object", Params=params, ExpiresIn=seconds))


_UNSAFE = re.compile(r"[^A-Za-z0-9._ ()+,=@-]")


def attachment(name: str) -> str:
    """A Content-Disposition that downloads ``name``: an ASCII fallback with nothing that could
    end the quoted string or the header, and the exact name as RFC 5987 ``filename*``."""
    fallback = _UNSAFE.sub("_", name)[:150] or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


_INLINE = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
_TEXT = (".txt", ".log")


def download_params(path: str) -> dict[str, str]:
    """How S3 must answer a presigned GET of a result file: raster figures and text inline,
    with their type fixed by name (never what the analysis claimed); anything else, which
    could render as HTML or script (.html, .svg, ...), as a download."""
    lowered = path.lower()
    ext = lowered[lowered.rfind(".") :] if "." in lowered.rsplit("/", 1)[-1] else ""
    if ext in _INLINE:
        return {"ResponseContentType": _INLINE[ext]}
    if ext in _TEXT:
        return {"ResponseContentType": "text/plain; charset=utf-8"}
    name = path.rsplit("/", 1)[-1]
    return {
        "ResponseContentDisposition": attachment(name),
        "ResponseContentType": "application/octet-stream",
    }
