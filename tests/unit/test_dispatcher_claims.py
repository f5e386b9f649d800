"""When a claim's maker counts as gone, so another dispatcher may retake its work."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ncaas_dev.dispatch.claims import (
    DEAD_OWNER_GRACE_SECONDS,
    STALE_CLAIM_SECONDS,
    claim_is_stale,
    dispatcher_identity,
)
from ncaas_dev.status import utcnow

NOW = time.time()


def ago(seconds: float) -> str:
    from datetime import UTC, datetime

    stamp = datetime.fromtimestamp(NOW - seconds, UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_identity_is_host_and_pid() -> None:
    assert dispatcher_identity() == f"{socket.gethostname()}:{os.getpid()}"


def test_a_live_dispatchers_claim_is_not_stale() -> None:
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "ncaas_dev"])
    try:
        owner = f"{socket.gethostname()}:{live.pid}"
        assert not claim_is_stale(owner, ago(DEAD_OWNER_GRACE_SECONDS + 5), NOW)
    finally:
        live.kill()
        live.wait()


def test_a_reused_pid_of_another_program_does_not_keep_a_claim() -> None:
    # A program whose command line names nothing of ncaas: not this venv's Python, whose path
    # may well hold "ncaas" (a clone at ~ncaastest/ncaas-dev, say).
    other = subprocess.Popen(["sleep", "30"])
    try:
        while not Path(f"/proc/{other.pid}/cmdline").read_bytes():
            time.sleep(0.01)  # until it has exec'd: before that it could be anyone's
        owner = f"{socket.gethostname()}:{other.pid}"
        assert claim_is_stale(owner, ago(DEAD_OWNER_GRACE_SECONDS + 5), NOW)
    finally:
        other.kill()
        other.wait()


def test_a_dead_local_owner_is_stale_after_the_grace() -> None:
    owner = f"{socket.gethostname()}:{dead_pid()}"
    assert claim_is_stale(owner, ago(DEAD_OWNER_GRACE_SECONDS + 1), NOW)
    assert not claim_is_stale(owner, ago(1), NOW)  # a runner it started may not have begun


def test_another_hosts_claim_waits_for_the_long_timeout() -> None:
    owner = "elsewhere:1234"
    assert not claim_is_stale(owner, ago(STALE_CLAIM_SECONDS - 5), NOW)
    assert claim_is_stale(owner, ago(STALE_CLAIM_SECONDS + 1), NOW)


def test_a_claim_without_a_time_is_stale() -> None:
    assert claim_is_stale(None, None, NOW)
    assert not claim_is_stale(dispatcher_identity(), utcnow())  # fresh: within the grace


def test_in_lambda_a_claim_expires_by_time_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 13, defect 8: Lambda sandboxes share host names and pids, so a claim of another
    sandbox must not be taken for one of a dead local process."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "ncaas-spike-detect-dispatcher")
    monkeypatch.setenv("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/30/[$LATEST]abc")
    assert dispatcher_identity() == "lambda:2026/11/30/[$LATEST]abc"
    same_host_dead_pid = f"{socket.gethostname()}:{dead_pid()}"
    for owner in (same_host_dead_pid, dispatcher_identity()):
        assert not claim_is_stale(owner, ago(DEAD_OWNER_GRACE_SECONDS + 60), NOW)
        assert claim_is_stale(owner, ago(STALE_CLAIM_SECONDS + 1), NOW)
