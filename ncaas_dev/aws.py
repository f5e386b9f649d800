"""boto3 clients for LocalStack (test credentials, path-style S3) or real AWS."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from .settings import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY, Settings

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

_RETRIES = {"max_attempts": 4, "mode": "standard"}


@lru_cache(maxsize=8)
def _local_session(region: str) -> boto3.Session:
    # One session per region and process: it caches the service models, so every client
    # after the first is made in milliseconds instead of a few hundred.
    return boto3.Session(
        aws_access_key_id=LOCAL_ACCESS_KEY,
        aws_secret_access_key=LOCAL_SECRET_KEY,
        region_name=region,
    )


def session(settings: Settings) -> boto3.Session:
    if settings.local:
        return _local_session(settings.region)
    # Real AWS: a fresh session each time, so changed credentials are always picked up.
    return boto3.Session(region_name=settings.region)


def client(settings: Settings, service: str, **config: Any) -> Any:
    cfg = Config(retries=_RETRIES, connect_timeout=5, read_timeout=60, **config)  # type: ignore[arg-type]
    return session(settings).client(
        service,
        endpoint_url=settings.endpoint_url,
        config=cfg,  # type: ignore[call-overload]
    )


# A local S3 client made ahead by a process that forks (the command server): the first
# ``s3_client`` of a forked child takes it instead of spending ~10 ms on a new one. It holds no
# connection (nothing is sent before the fork) and LocalStack's keys are fixed, so it is the
# client the child would have made.
_made_ahead: dict[tuple[str | None, str], S3Client] = {}


def s3_client(settings: Settings) -> S3Client:
    if settings.local and (
        ready := _made_ahead.pop((settings.endpoint_url, settings.region), None)
    ):
        return ready
    # Path-style: LocalStack's virtual-host names need DNS this machine may not have.
    style = {"addressing_style": "path"} if settings.local else {}
    client_: S3Client = client(settings, "s3", s3=style, max_pool_connections=32)
    return client_


def make_s3_client_ahead(settings: Settings) -> None:
    """Keep a local S3 client for the next ``s3_client(settings)``; call it only where that
    call comes in a forked child (in the process itself the client would be shared)."""
    if settings.local:
        _made_ahead[(settings.endpoint_url, settings.region)] = s3_client(settings)


def sqs_client(settings: Settings) -> SQSClient:
    client_: SQSClient = client(settings, "sqs")
    return client_


def ec2_client(settings: Settings) -> EC2Client:
    client_: EC2Client = client(settings, "ec2")
    return client_


def iam_client(settings: Settings) -> IAMClient:
    client_: IAMClient = client(settings, "iam")
    return client_
