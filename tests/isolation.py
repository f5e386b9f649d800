"""The test session's environment: nothing of the developer's machine leaks in or is touched.

Applied by tests/conftest.py before any test runs. A developer's shell may point at their own
LocalStack (AWS_ENDPOINT_URL, or nothing: the default is their stack on localhost:4566), hold
real AWS keys or a profile, a region, an ``~/.aws/config`` with endpoints, a state folder of
their own (NCAAS_STATE_DIR, default ``~/.ncaas-dev``) or an analysis network. The session
replaces all of that: its own state folder, an endpoint that refuses every connection (tests
that want LocalStack start their own and say so), no AWS credentials or config files, the
instance metadata service off (it is not on loopback), region us-east-1.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

REMOVED = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "NCAAS_ANALYSIS_NETWORK",
)


class Isolation:
    def __init__(self) -> None:
        self.saved = dict(os.environ)
        self.home = Path(tempfile.mkdtemp(prefix="ncaas-test-env-"))
        # Bound and never listening: the port refuses connections and no one else can take it
        # while the session lasts (a fixed "closed" port such as 9 may have a listener).
        self._closed = socket.socket()
        self._closed.bind(("127.0.0.1", 0))
        self.closed_endpoint = f"http://127.0.0.1:{self._closed.getsockname()[1]}"

    def apply(self) -> None:
        for name in list(os.environ):
            if name in REMOVED or name.startswith("AWS_ENDPOINT_URL_"):
                del os.environ[name]
        os.environ.update(
            {
                "NCAAS_STATE_DIR": str(self.home / "state"),
                "AWS_ENDPOINT_URL": self.closed_endpoint,
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_CONFIG_FILE": str(self.home / "aws-config"),  # absent: no profiles
                "AWS_SHARED_CREDENTIALS_FILE": str(self.home / "aws-credentials"),
                "AWS_EC2_METADATA_DISABLED": "true",
            }
        )

    def undo(self) -> None:
        os.environ.clear()
        os.environ.update(self.saved)
        self._closed.close()
        shutil.rmtree(self.home, ignore_errors=True)


_current: Isolation | None = None


def closed_endpoint() -> str:
    """An endpoint on loopback that refuses every connection for the whole session."""
    assert _current is not None, "tests/conftest.py applies the isolation first"
    return _current.closed_endpoint


def start() -> None:
    global _current
    _current = Isolation()
    _current.apply()


def stop() -> None:
    global _current
    if _current is not None:
        _current.undo()
        _current = None
