"""The local stack in containers (``docker-compose.yml``): start it, say what runs, stop it.

``ncaas-dev up --containers`` builds the stack's two images (``stack_images``; skipped when
unchanged), starts the compose file with the settings of this machine (port, state folder,
the invoking user) and leaves a record, ``compose.json``, in the state folder: that is how
``status`` tells which kind of stack runs and ``down`` knows what to stop. The record's project
name is derived from the state folder, so a test session's stack and a developer's never meet.

Module-level imports are the standard library's only: ``ncaas-dev status`` reads the record and
asks the engine over its socket, without the Docker SDK.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

from ..errors import ServiceUnavailable, UsageError
from ..settings import PROJECT_ROOT, Settings

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
RECORD = "compose.json"
DOCKER_SOCKET = "/var/run/docker.sock"
SERVICES = ("localstack", "dispatcher")


@dataclass(frozen=True)
class ComposeStack:
    project: str
    port: int
    state_dir: str
    localstack_image: str
    dispatcher_image: str

    def environment(self) -> dict[str, str]:
        """What docker-compose.yml reads: images, port, state folder, who runs it."""
        return {
            **os.environ,
            "COMPOSE_PROJECT_NAME": self.project,
            "NCAAS_LOCALSTACK_IMAGE": self.localstack_image,
            "NCAAS_DISPATCHER_IMAGE": self.dispatcher_image,
            "NCAAS_COMPOSE_PORT": str(self.port),
            "NCAAS_STATE_DIR": self.state_dir,
            "NCAAS_UID": str(os.getuid()),
            "NCAAS_GID": str(os.getgid()),
            "NCAAS_DOCKER_GID": str(_socket_group()),
        }

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        binary = shutil.which("docker-compose")
        if binary is None:
            raise ServiceUnavailable(
                "docker-compose is not installed",
                hint="run `make setup` (scripts/ensure-system-packages.sh installs it)",
            )
        command = [binary, "-p", self.project, "-f", str(COMPOSE_FILE), *args]
        return subprocess.run(
            command,
            env=self.environment(),
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )


def _socket_group() -> int:
    try:
        return os.stat(DOCKER_SOCKET).st_gid
    except OSError:
        return 0


def project_name(state_dir: Path) -> str:
    explicit = os.environ.get("NCAAS_COMPOSE_PROJECT")
    if explicit:
        return explicit
    return "ncaas-" + hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:8]


def loopback_port(settings: Settings) -> int:
    """The endpoint's port; the containers' stack is published on the loopback address only."""
    url = urlparse(settings.endpoint_url or "")
    if url.scheme != "http" or url.hostname not in ("localhost", "127.0.0.1"):
        raise UsageError(
            f"--containers publishes LocalStack on 127.0.0.1 only, not at {settings.endpoint_url}",
            hint="use http://localhost:PORT or http://127.0.0.1:PORT (or drop --endpoint-url)",
        )
    return url.port or 4566


def read_record(state_dir: Path) -> ComposeStack | None:
    try:
        return ComposeStack(**json.loads((state_dir / RECORD).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def up(settings: Settings, say: Callable[[str], None], wait: float = 120) -> ComposeStack:
    """Build the images if changed and start the compose stack; return once LocalStack answers."""
    from .images import DISPATCHER, LOCALSTACK, ensure_image
    from .stack import STACK_PROCESSES, PidFile, endpoint_answers, health_ok

    assert settings.endpoint_url is not None
    port = loopback_port(settings)
    for name in STACK_PROCESSES:
        if name != "cmdserver" and (info := PidFile(settings.state_dir, name).read()).running:
            raise UsageError(
                f"the host stack runs ({name}, pid {info.pid})",
                hint="stop it first: `ncaas-dev down`",
            )
    if read_record(settings.state_dir) is None and endpoint_answers(settings.endpoint_url):
        raise UsageError(
            f"something else answers at {settings.endpoint_url}",
            hint="stop it, or pick another port with --endpoint-url http://localhost:PORT",
        )
    stack = ComposeStack(
        project=project_name(settings.state_dir),
        port=port,
        state_dir=str(settings.state_dir.resolve()),
        localstack_image=ensure_image(LOCALSTACK, say),
        dispatcher_image=ensure_image(DISPATCHER, say),
    )
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    (settings.state_dir / RECORD).write_text(json.dumps(asdict(stack)))
    if settings.chosen_endpoint:
        # Docker's proxy (root) publishes the port: later commands must not take it for
        # another user's stack and choose a port of their own (ownership.py).
        from ..ownership import record_endpoint

        record_endpoint(settings.endpoint_url, settings.state_dir)
    done = stack.run("up", "-d", "--no-build")
    if done.returncode != 0:
        raise ServiceUnavailable(
            f"docker-compose could not start the stack ({stack.project})",
            hint=_tail(done.stderr),
        )
    deadline = time.monotonic() + wait
    while not health_ok(settings.endpoint_url):
        if time.monotonic() > deadline:
            raise ServiceUnavailable(
                f"LocalStack's container did not answer at {settings.endpoint_url}",
                hint=f"see `docker-compose -p {stack.project} logs localstack`",
            )
        time.sleep(0.2)
    return stack


def down(settings: Settings) -> ComposeStack | None:
    """Stop the compose stack of this state folder (its runners first); None if there is none."""
    from ..launchers.sibling import stop_runners

    stack = read_record(settings.state_dir)
    if stack is None:
        return None
    # Runner containers are not the project's: gone first, or the network stays in use.
    stop_runners(Path(stack.state_dir))
    done = stack.run("down", "--remove-orphans", "--timeout", "10")
    if done.returncode != 0:
        raise ServiceUnavailable(
            f"docker-compose could not stop {stack.project}", hint=_tail(done.stderr)
        )
    (settings.state_dir / RECORD).unlink(missing_ok=True)
    return stack


class _EngineConnection(http.client.HTTPConnection):
    """HTTP to the Docker engine over its unix socket (the SDK costs more than the answer)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


def project_containers(project: str, timeout: float = 2) -> list[dict[str, Any]] | None:
    """The engine's summary of the project's containers; None if the engine does not answer."""
    filters = quote(json.dumps({"label": [f"com.docker.compose.project={project}"]}))
    connection = _EngineConnection(DOCKER_SOCKET, timeout)
    try:
        connection.request("GET", f"/containers/json?all=1&filters={filters}")
        reply = connection.getresponse()
        if reply.status != 200:
            return None
        found: list[dict[str, Any]] = json.loads(reply.read())
        return found
    except (OSError, ValueError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def containers_status(state_dir: Path) -> dict[str, Any] | None:
    """``{"project", "localstack": {...}, "dispatcher": {...}}`` of the compose stack whose record
    is in ``state_dir``; None when there is no record (no compose stack was started here)."""
    stack = read_record(state_dir)
    if stack is None:
        return None
    doc: dict[str, Any] = {"project": stack.project, "port": stack.port}
    found = project_containers(stack.project) or []
    for service in SERVICES:
        mine = [c for c in found if c["Labels"].get("com.docker.compose.service") == service]
        running = [c for c in mine if c.get("State") == "running"]
        doc[service] = {
            "running": bool(running),
            "container": running[0]["Id"][:12] if running else None,
            "image": (running or mine or [{}])[0].get("Image"),
        }
    return doc


def _tail(text: str, lines: int = 4) -> str:
    return " | ".join(text.strip().splitlines()[-lines:]) or "(no output)"
