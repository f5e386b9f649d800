"""The local AWS Batch: moto's server on a free loopback port, beside LocalStack.

LocalStack's community edition has no Batch; moto's server has, and runs each job as a real
container on the local Docker engine. ``up --launcher batch`` starts it once per state folder
(``batch.json`` holds its pid and endpoint) and ``down`` stops it. Its containers join the
host's network (``MOTO_DOCKER_NETWORK_MODE=host``), so a runner reaches LocalStack on loopback
exactly as a runner the docker launcher starts does.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import ServiceUnavailable
from ..processes import alive
from .stack import PidFile, ProcessInfo, _spawn, _tail, endpoint_answers

NAME = "batch"  # the pid file's and the process's name in STACK_PROCESSES
START_WAIT_SECONDS = 60.0
# Set by a test or an operator to use a Batch endpoint already running (moto or AWS-like).
ENDPOINT_ENV = "NCAAS_BATCH_ENDPOINT"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def batch_endpoint(state_dir: Path) -> str | None:
    """The Batch endpoint of the stack of ``state_dir``: $NCAAS_BATCH_ENDPOINT, or the running
    server's, or None."""
    explicit = os.environ.get(ENDPOINT_ENV)
    if explicit:
        return explicit.rstrip("/")
    info = PidFile(state_dir, NAME).read()
    return info.detail.get("endpoint") if info.running else None


def server_command(port: int) -> list[str]:
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


def server_env() -> dict[str, str]:
    return {
        **os.environ,
        # The job containers share the host's network: LocalStack on 127.0.0.1 answers them.
        "MOTO_DOCKER_NETWORK_MODE": "host",
        # moto's Batch keeps jobs in memory only; nothing of it should reach the real AWS.
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
    }


def start_batch_server(state_dir: Path, wait: float = START_WAIT_SECONDS) -> ProcessInfo:
    """moto's server for Batch (and the IAM role Batch asks for), started unless it runs."""
    pidfile = PidFile(state_dir, NAME)
    info = pidfile.read()
    if info.running:
        return info
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log_path = state_dir / "batch.log"
    process = _spawn(server_command(port), server_env(), log_path)
    pidfile.write(process.pid, endpoint=endpoint)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if endpoint_answers(endpoint, timeout=1):
            return pidfile.read()
        if not alive(process.pid) or process.poll() is not None:
            break
        time.sleep(0.2)
    pidfile.stop()
    raise ServiceUnavailable(
        f"the local Batch server (moto) did not start at {endpoint}",
        hint=f"see {log_path}: {_tail(log_path)}",
    )


def stop_batch_containers(state_dir: Path) -> int:
    """Remove the Batch job containers of the stack of ``state_dir`` (``ncaas-dev down``): moto
    stops with the server but its job containers would run on. Told apart by their state
    folder in the job's environment, never by name alone (another stack on the same engine)."""
    import contextlib

    from ..containers import connect, containers_where
    from ..launchers.base import DatasetTask
    from ..launchers.docker import remove_containers

    client: Any = connect()
    removed = 0
    for container in containers_where(client, {"name": "ncaas-"}):
        env = dict(e.split("=", 1) for e in container.attrs["Config"].get("Env") or [] if "=" in e)
        if env.get("NCAAS_STATE_DIR") != str(state_dir):
            continue
        with contextlib.suppress(Exception):
            container.remove(force=True)
            removed += 1
        with contextlib.suppress(ValueError, KeyError):
            remove_containers(DatasetTask.model_validate_json(env["NCAAS_TASK"]))
    return removed
