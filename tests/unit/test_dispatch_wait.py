"""`ncaas-dev dispatch` waits for a LocalStack that answers late (the compose stack starts both at
once, and LocalStack's first request loads a service), then says clearly that it gave up."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from waiting import free_port  # tests/ is on sys.path: pytest's rootdir conftest


class _AnyAnswer(http.server.BaseHTTPRequestHandler):
    """An endpoint that answers every request with 404: it answers, but serves no SQS."""

    def _answer(self) -> None:
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_HEAD = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def late_endpoint() -> Iterator[str]:
    """An endpoint that starts answering 3 s from now (longer than one 2 s check)."""
    port = free_port()
    stop = threading.Event()

    def serve() -> None:
        if stop.wait(3):
            return
        with http.server.ThreadingHTTPServer(("127.0.0.1", port), _AnyAnswer) as server:
            server.daemon_threads = True
            server.timeout = 0.2
            while not stop.is_set():
                server.handle_request()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    stop.set()
    thread.join(10)


def dispatch(endpoint: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ncaas_dev", "dispatch", "--endpoint-url", endpoint],
        env={**os.environ, "NCAAS_STATE_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_dispatch_waits_for_a_late_endpoint(late_endpoint: str, tmp_path: Path) -> None:
    done = dispatch(late_endpoint, tmp_path)
    # It got past the start-up check: what stops it now is the endpoint serving no SQS.
    assert "does not answer" not in done.stderr, done.stderr[-2000:]
    assert f"waiting up to 60 s for LocalStack at {late_endpoint}" in done.stderr
    assert done.returncode != 0


def test_dispatch_gives_up_naming_the_endpoint_and_the_wait(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    done = dispatch(endpoint, tmp_path, NCAAS_DISPATCH_WAIT_SECONDS="1")
    assert done.returncode != 0
    assert f"LocalStack does not answer at {endpoint} within 1 s" in done.stderr, done.stderr
    assert "ncaas-dev up" in done.stderr  # the hint: what to do
