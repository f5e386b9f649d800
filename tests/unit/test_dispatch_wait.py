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


class LateEndpoint:
    """An endpoint that starts answering only when told to (after dispatch said it waits)."""

    def __init__(self) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        self.answer = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.answer.wait(0.1):
            if self.stop.is_set():
                return
        port = int(self.url.rsplit(":", 1)[1])
        with http.server.ThreadingHTTPServer(("127.0.0.1", port), _AnyAnswer) as server:
            server.daemon_threads = True
            server.timeout = 0.2
            while not self.stop.is_set():
                server.handle_request()


@pytest.fixture
def late_endpoint() -> Iterator[LateEndpoint]:
    endpoint = LateEndpoint()
    yield endpoint
    endpoint.stop.set()
    endpoint.thread.join(10)


def dispatch(endpoint: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        dispatch_command(endpoint),
        env=dispatch_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def dispatch_command(endpoint: str) -> list[str]:
    return [sys.executable, "-m", "ncaas_dev", "dispatch", "--endpoint-url", endpoint]


def dispatch_env(tmp_path: Path, **env: str) -> dict[str, str]:
    return {**os.environ, "NCAAS_STATE_DIR": str(tmp_path), **env}


def test_dispatch_waits_for_a_late_endpoint(late_endpoint: LateEndpoint, tmp_path: Path) -> None:
    # The endpoint answers only once dispatch has said it waits: however slowly the process
    # starts on a loaded machine, the endpoint is late for it.
    with subprocess.Popen(
        dispatch_command(late_endpoint.url),
        env=dispatch_env(tmp_path),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    ) as process:
        assert process.stderr is not None
        seen: list[str] = []
        for line in process.stderr:
            seen.append(line)
            if f"waiting up to 60 s for LocalStack at {late_endpoint.url}" in line:
                late_endpoint.answer.set()
                break
        rest = process.stderr.read()
        returncode = process.wait(120)
    stderr = "".join(seen) + rest
    assert late_endpoint.answer.is_set(), stderr[-2000:]
    # It got past the start-up check: what stops it now is the endpoint serving no SQS.
    assert "does not answer" not in stderr, stderr[-2000:]
    assert returncode != 0


def test_dispatch_gives_up_naming_the_endpoint_and_the_wait(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    done = dispatch(endpoint, tmp_path, NCAAS_DISPATCH_WAIT_SECONDS="1")
    assert done.returncode != 0
    assert f"LocalStack does not answer at {endpoint} within 1 s" in done.stderr, done.stderr
    assert "ncaas-dev up" in done.stderr  # the hint: what to do
