"""S3 event records, as AWS Lambda receives them and SQS carries them from S3 (pure)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus


@dataclass(frozen=True)
class ObjectCreated:
    bucket: str
    key: str
    etag: str | None
    size: int | None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def records_from_s3_event(event: Any) -> list[ObjectCreated]:
    """ObjectCreated records of an S3 event; test events and other kinds are skipped."""
    found: list[ObjectCreated] = []
    records = event.get("Records") if isinstance(event, dict) else None
    for record in records if isinstance(records, list) else []:
        if not isinstance(record, dict):
            continue
        name = record.get("eventName")
        if not isinstance(name, str) or not name.startswith("ObjectCreated"):
            continue
        s3 = _mapping(record.get("s3"))
        bucket = _mapping(s3.get("bucket")).get("name")
        obj = _mapping(s3.get("object"))
        key = obj.get("key")
        if not isinstance(bucket, str) or not isinstance(key, str):
            continue
        # S3 URL-encodes keys in events, spaces as '+'.
        etag = obj.get("eTag") or obj.get("etag")
        size = obj.get("size")
        found.append(
            ObjectCreated(
                bucket=bucket,
                key=unquote_plus(key),
                etag=(etag.strip('"') or None) if isinstance(etag, str) else None,
                size=size if isinstance(size, int) and not isinstance(size, bool) else None,
            )
        )
    return found


def records_from_sqs_body(body: str) -> list[ObjectCreated]:
    """Records of a message body; anything that is not an S3 event yields none."""
    try:
        event = json.loads(body)
    except (ValueError, RecursionError):  # bad JSON, 4300+ digit numbers, deep nesting
        return []
    return records_from_s3_event(event)
