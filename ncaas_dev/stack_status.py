"""What runs on the local stack, read cheaply: pid files and a few signed S3 requests.

`ncaas-dev status` is run often and answers in a fraction of a second: it reads the pid files
and asks the endpoint over one HTTP connection for its buckets (ListBuckets, which also tells
whether it answers) and for each bucket whether it holds an analysis record (HEAD). No boto3
client (importing boto3 and loading S3's model cost more than the whole answer): botocore's
signer alone.
"""

from __future__ import annotations

import http.client
from typing import Any
from urllib.parse import quote, urlsplit

from .errors import StorageError
from .layout import BLUEPRINT_RECORD
from .settings import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY, Settings

_S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def signed_headers(method: str, url: str, region: str) -> dict[str, str]:
    """Headers of a body-less request to a local S3, signed by botocore's own SigV4 signer with
    LocalStack's keys. Imported here, once the endpoint took the connection: botocore's signer
    costs a tenth of a second to import, and a stack that is down needs no signature."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method=method, url=url, data=b"")
    S3SigV4Auth(Credentials(LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY), "s3", region).add_auth(request)
    return dict(request.headers.items())


class _Endpoint:
    """One keep-alive HTTP connection to a local S3 endpoint (path-style, signed)."""

    def __init__(self, endpoint: str, region: str, timeout: float) -> None:
        url = urlsplit(endpoint)
        kind = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        self.origin = f"{url.scheme}://{url.netloc}"
        self.base = url.path.rstrip("/")
        self.region = region
        self.connection = kind(url.hostname or "localhost", url.port, timeout=timeout)

    def request(self, method: str, path: str) -> tuple[int, bytes]:
        path = quote(self.base + path, safe="/~")
        if self.connection.sock is None:
            self.connection.connect()  # refused: the stack is down, nothing to sign
        headers = signed_headers(method, self.origin + path, self.region)
        self.connection.request(method, path, headers=headers)
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
