"""What a browser does to S3 itself, with URLs signed here: multipart uploads (started, resumed,
completed, aborted here; each part PUT by the browser to a presigned URL) and downloads by
presigned GET. A sibling of ``storage.py``, in its layer; errors translated the same way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


def download_url(
    storage: Storage, bucket: str, key: str, seconds: int, attachment: str | None = None
) -> str:
    """A presigned GET; ``attachment``: the browser saves the file under that name."""
    params: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if attachment:
        params["ResponseContentDisposition"] = f'attachment; filename="{attachment}"'
    return str(storage.s3.generate_presigned_url("get_object", Params=params, ExpiresIn=seconds))
