"""What runs on the local stack, read cheaply: pid files and a few signed S3 requests.

`ncaas-dev status` is run often and answers in a fraction of a second: it reads the pid files
and asks the endpoint over one HTTP connection for its buckets (ListBuckets, which also tells
whether it answers) and for each bucket whether it holds an analysis record (HEAD). No boto3:
importing it and building a client costs more than the whole answer.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from ..errors import StorageError
from ..layout import BLUEPRINT_RECORD
from ..settings import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY, Settings

_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def sign_v4(
    method: str, host: str, path: str, region: str, now: datetime, service: str = "s3"
) -> dict[str, str]:
    """Headers of a body-less, query-less request signed with AWS Signature Version 4.

    Kept by hand on purpose: botocore's signer (``botocore.auth``) imports urllib3 and more,
    which measured +1.6 s on `status` under load (median of 7, load 15-18; issue 19), against
    a whole answer of about 2.7 s; test_cli_startup checks this one against botocore's."""
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    day = stamp[:8]
    headers = {"host": host, "x-amz-content-sha256": _EMPTY_SHA256, "x-amz-date": stamp}
    names = sorted(headers)
    signed = ";".join(names)
    canonical = "\n".join(
        [method, quote(path, safe="/~"), "", *(f"{k}:{headers[k]}" for k in names), "", signed]
    )
    canonical += "\n" + _EMPTY_SHA256
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = f"AWS4{LOCAL_SECRET_KEY}".encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={LOCAL_ACCESS_KEY}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    return headers


class _Endpoint:
    """One keep-alive HTTP connection to a local S3 endpoint (path-style, signed)."""

    def __init__(self, endpoint: str, region: str, timeout: float) -> None:
        url = urlsplit(endpoint)
        kind = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        self.host = url.netloc
        self.base = url.path.rstrip("/")
        self.region = region
        self.connection = kind(url.hostname or "localhost", url.port, timeout=timeout)

    def request(self, method: str, path: str) -> tuple[int, bytes]:
        path = self.base + path
        headers = sign_v4(method, self.host, path, self.region, datetime.now(UTC))
        self.connection.request(method, quote(path, safe="/~"), headers=headers)
        reply = self.connection.getresponse()
        return reply.status, reply.read()

    def close(self) -> None:
        self.connection.close()


def _bucket_names(body: bytes) -> list[str]:
    from xml.etree import ElementTree

    root = ElementTree.fromstring(body)
    names = root.iter(f"{_S3_NS}Name") if root.tag.startswith(_S3_NS) else root.iter("Name")
    return [n.text for n in names if n.text]


def _failed(what: str, status: int) -> StorageError:
    """The error `storage.translated` gives for the same answer."""
    if status == 403:
        return StorageError(
            f"{what}: access denied", hint="your credentials may not reach this key"
        )
    return StorageError(f"{what}: error: HTTP {status}")


def probe_analyses(settings: Settings, timeout: float = 2) -> tuple[bool, list[str]]:
    """Whether the endpoint answers at all (any HTTP answer counts, as in
    ``stack.endpoint_answers``), and the buckets on it that hold an analysis record."""
    if not settings.endpoint_url:
        return False, []
    endpoint = _Endpoint(settings.endpoint_url, settings.region, timeout)
    try:
        try:
            status, body = endpoint.request("GET", "/")
        except (OSError, http.client.HTTPException):
            return False, []
        if status != 200:
            raise _failed("list buckets", status)
        analyses = []
        for bucket in _bucket_names(body):
            status, _ = endpoint.request("HEAD", f"/{bucket}/{BLUEPRINT_RECORD}")
            if status == 200:
                analyses.append(bucket)
            elif status != 404:
                raise _failed(f"s3://{bucket}/{BLUEPRINT_RECORD}", status)
        return True, analyses
    except (OSError, http.client.HTTPException) as e:
        raise StorageError(f"list buckets: {e}") from e
    finally:
        endpoint.close()


def stack_status(settings: Settings) -> dict[str, Any]:
    """The local stack's processes and analyses, as `ncaas-dev status --json` prints them."""
    from .compose import containers_status
    from .stack import PidFile

    localstack = PidFile(settings.state_dir, "localstack").read()
    dispatcher = PidFile(settings.state_dir, "dispatcher").read()
    standin = PidFile(settings.state_dir, "ec2-standin").read()
    answering, analyses = probe_analyses(settings)
    containers = containers_status(settings.state_dir)
    host = "host" if localstack.running or dispatcher.running else None
    doc: dict[str, Any] = {
        "endpoint": settings.endpoint_url,
        "endpoint_answers": answering,
        # Which kind of stack runs: "host" (`ncaas-dev up`), "containers" (`up --containers`).
        "stack": "containers" if containers else host,
        "localstack": {"running": localstack.running or answering, "pid": localstack.pid},
        "dispatcher": {
            "running": dispatcher.running,
            "pid": dispatcher.pid,
            "launcher": dispatcher.detail.get("launcher", "docker"),
        },
        "ec2_standin": {"running": standin.running, "pid": standin.pid},
        "analyses": analyses,
        "state_dir": str(settings.state_dir),
    }
    batch = PidFile(settings.state_dir, "batch").read()
    if doc["dispatcher"]["launcher"] == "batch" or batch.running:
        # The local Batch server (moto) the batch launcher submits to (docs/batch.md).
        doc["batch"] = {"endpoint": batch.detail.get("endpoint"), "running": batch.running}
    if containers:
        doc["localstack"] = {"running": containers["localstack"]["running"], "pid": None}
        doc["dispatcher"] = {
            "running": containers["dispatcher"]["running"],
            "pid": None,
            "launcher": "docker",
        }
        doc["containers"] = containers
    elif doc["stack"] is None and answering:
        doc["stack"] = "external"  # an endpoint answers that this state folder did not start
    return doc
