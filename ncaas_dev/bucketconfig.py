"""A bucket's own settings in S3: CORS, lifecycle rules, event notifications, blocked public
access, default encryption, and the list of buckets. With ``storage.py`` (objects) and
``presign.py`` (URLs a browser uses), the only modules that call S3; errors are translated
as ``storage`` translates them. A setting the bucket does not have reads as None."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from .storage import Storage, translated

# What S3 answers for a setting that was never made (not an error for us: "none yet").
_ABSENT = {
    "NoSuchCORSConfiguration",
    "NoSuchLifecycleConfiguration",
    "ServerSideEncryptionConfigurationNotFoundError",
    "NoSuchPublicAccessBlockConfiguration",
}


def _setting(storage: Storage, what: str, get: Callable[[], Any]) -> dict[str, Any] | None:
    with translated(what, storage.endpoint):
        try:
            reply = dict(get())
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in _ABSENT:
                return None
            raise
    reply.pop("ResponseMetadata", None)
    return reply


def list_buckets(storage: Storage) -> list[str]:
    with translated("list buckets", storage.endpoint):
        return [b["Name"] for b in storage.s3.list_buckets().get("Buckets", [])]


def cors_rules(storage: Storage, bucket: str) -> list[dict[str, Any]]:
    s3 = storage.s3
    reply = _setting(storage, f"CORS of {bucket}", lambda: s3.get_bucket_cors(Bucket=bucket))
    return [dict(r) for r in (reply or {}).get("CORSRules", [])]


def put_cors_rules(storage: Storage, bucket: str, rules: list[dict[str, Any]]) -> None:
    with translated(f"set CORS on {bucket}", storage.endpoint):
        storage.s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})  # type: ignore[typeddict-item]


def lifecycle_rules(storage: Storage, bucket: str) -> list[dict[str, Any]] | None:
    """The bucket's lifecycle rules; None when it has no lifecycle configuration."""
    s3 = storage.s3
    reply = _setting(
        storage,
        f"lifecycle of {bucket}",
        lambda: s3.get_bucket_lifecycle_configuration(Bucket=bucket),
    )
    return None if reply is None else [dict(r) for r in reply.get("Rules", [])]


def put_lifecycle_rules(storage: Storage, bucket: str, rules: list[dict[str, Any]]) -> None:
    with translated(f"set lifecycle on {bucket}", storage.endpoint):
        storage.s3.put_bucket_lifecycle_configuration(
            Bucket=bucket,
            LifecycleConfiguration={"Rules": rules},  # type: ignore[typeddict-item]
        )


def notifications(storage: Storage, bucket: str) -> dict[str, Any]:
    """The bucket's event notification configuration (empty when it has none)."""
    s3 = storage.s3
    reply = _setting(
        storage,
        f"notifications of {bucket}",
        lambda: s3.get_bucket_notification_configuration(Bucket=bucket),
    )
    return reply or {}


def put_notifications(storage: Storage, bucket: str, config: dict[str, Any]) -> None:
    with translated(f"set notifications on {bucket}", storage.endpoint):
        storage.s3.put_bucket_notification_configuration(
            Bucket=bucket,
            NotificationConfiguration=config,  # type: ignore[arg-type]
        )


def public_access_block(storage: Storage, bucket: str) -> dict[str, bool] | None:
    s3 = storage.s3
    reply = _setting(
        storage, f"public access of {bucket}", lambda: s3.get_public_access_block(Bucket=bucket)
    )
    return None if reply is None else dict(reply.get("PublicAccessBlockConfiguration", {}))


def block_public_access(storage: Storage, bucket: str, block: dict[str, bool]) -> None:
    with translated(f"block public access to {bucket}", storage.endpoint):
        storage.s3.put_public_access_block(
            Bucket=bucket,
            PublicAccessBlockConfiguration=block,  # type: ignore[arg-type]
        )


def default_encryption(storage: Storage, bucket: str) -> list[dict[str, Any]] | None:
    """The bucket's default encryption rules; None when it has none."""
    s3 = storage.s3
    reply = _setting(
        storage, f"encryption of {bucket}", lambda: s3.get_bucket_encryption(Bucket=bucket)
    )
    return None if reply is None else reply["ServerSideEncryptionConfiguration"].get("Rules", [])


def encrypt_by_default(storage: Storage, bucket: str) -> None:
    """SSE-S3 (AES256) for every new object of the bucket."""
    with translated(f"set encryption on {bucket}", storage.endpoint):
        storage.s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
