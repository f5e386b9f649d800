"""The local stack's processes: LocalStack's runtime and the dispatcher, each with a pid file.

LocalStack runs from its own virtual environment (``localstack/.venv``, made by the setup)
because no image registry is reachable; an endpoint that already answers is used as it is.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from ..errors import ServiceUnavailable
from ..ownership import record_endpoint, require_own_stack
from ..privacy import FILE_MODE, child_env, private_dir, tighten, write_private
from ..processes import alive
from ..settings import DEFAULT_ENDPOINT, PROJECT_ROOT, Settings

# Daemons outlive the command that starts them; holding their handles keeps Python from
# warning that they still run when the command exits.
_DAEMONS: list[subprocess.Popen[bytes]] = []


@atexit.register
def _detach_daemons() -> None:
    for process in _DAEMONS:
        if process.poll() is None:
            process.returncode = 0  # deliberately left running: not a leak


SERVICES = "s3,sqs,sts,iam,ec2,cloudformation,lambda,logs"
# What `up` may start, in the order `down` stops it: new commands first, LocalStack last.
STACK_PROCESSES = ("cmdserver", "dispatcher", "ec2-standin", "batch", "localstack")
LOCALSTACK_HINT = "start it with `ncaas-dev up` (after `make setup`)"
# How long `dispatch` waits for LocalStack at start: in the compose stack it starts beside it, and
# LocalStack's first request loads a service (measured up to 17 s on a busy machine).
DISPATCH_WAIT_SECONDS = float(os.environ.get("NCAAS_DISPATCH_WAIT_SECONDS", "60"))


@dataclass(frozen=True)
class ProcessInfo:
    running: bool
    pid: int | None
    detail: dict[str, str]


class PidFile:
    """``{name}.json`` in the state folder: pid plus facts about the process."""

    def __init__(self, state_dir: Path, name: str) -> None:
        self.path = state_dir / f"{name}.json"

    def read(self) -> ProcessInfo:
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return ProcessInfo(False, None, {})
        pid = int(doc.pop("pid", 0)) or None
        running = pid is not None and alive(pid)
        return ProcessInfo(running, pid if running else None, {k: str(v) for k, v in doc.items()})

    def write(self, pid: int, **detail: str) -> None:
        write_private(self.path, json.dumps({"pid": pid, **detail}).encode())

    def stop(self, timeout: float = 15) -> bool:
        info = self.read()
        self.path.unlink(missing_ok=True)
        if not info.running or info.pid is None:
            return False
        try:
            os.killpg(info.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            os.kill(info.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and alive(info.pid):
            time.sleep(0.1)
        # Whatever the wait concluded, nothing of the group may outlive `stop`: LocalStack's
        # shutdown was seen to hang in a thread after its main thread had gone.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(info.pid, signal.SIGKILL)
        return True


def health_ok(endpoint: str, timeout: float = 2) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/_localstack/health", timeout=timeout) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def endpoint_answers(endpoint: str, timeout: float = 2) -> bool:
    """Any HTTP answer counts: the endpoint may be a LocalStack we did not start, or AWS."""
    try:
        urllib.request.urlopen(endpoint, timeout=timeout).close()
        return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError, ValueError):
        return False


def localstack_python() -> Path:
    explicit = os.environ.get("NCAAS_LOCALSTACK_PYTHON")
    return Path(explicit) if explicit else PROJECT_ROOT / "localstack" / ".venv" / "bin" / "python"


# LocalStack's S3 spools object bodies under a fixed /tmp/localstack-s3-storage/{bucket} that
# every LocalStack on the machine shares: one stack deleting or cleaning up a bucket removed
# another's files, and the folder, made by whoever ran first, refused every other user. Each
# stack gets its own under its state folder (the path is a module constant, not a setting).
# And its failed writes destroy the object they meant to replace; localstack/s3_atomic_writes.py
# makes them leave it whole, as S3 does.
_BOOT = (
    "import runpy, sys\n"
    "import localstack.services.s3.provider as s3\n"
    "s3.DEFAULT_S3_TMP_DIR = sys.argv.pop(1)\n"
    "runpy.run_path(sys.argv.pop(1))\n"
    "runpy.run_module('localstack.runtime.main', run_name='__main__', alter_sys=True)\n"
)
ATOMIC_WRITES = PROJECT_ROOT / "localstack" / "s3_atomic_writes.py"


def localstack_command(settings: Settings) -> list[str]:
    """LocalStack's runtime, its S3 storage in ``settings``' state folder, its writes whole."""
    storage = settings.state_dir / "localstack" / "s3-storage"
    return [str(localstack_python()), "-c", _BOOT, str(storage), str(ATOMIC_WRITES)]


def _loopback(host: str | None) -> str:
    """The endpoint's host if it is a loopback address, else 127.0.0.1 (never a wildcard)."""
    try:
        if host and ipaddress.ip_address(host).is_loopback:
            return f"[{host}]" if ":" in host else host
    except ValueError:
        pass  # a name (localhost): LocalStack binds what it resolves to, so bind the address
    return "127.0.0.1"


def localstack_env(settings: Settings) -> dict[str, str]:
    assert settings.endpoint_url is not None
    url = urlparse(settings.endpoint_url)
    root = settings.state_dir / "localstack"
    return child_env(
        {
            # Loopback only: the stack holds a lab's data behind the well-known test/test keys.
            # LocalStack's default gateway (twisted) binds every address whatever GATEWAY_LISTEN
            # says; hypercorn binds the address given (docs/design.md, "The local stack").
            "GATEWAY_SERVER": "hypercorn",
            "GATEWAY_LISTEN": f"{_loopback(url.hostname)}:{url.port or 4566}",
            "SERVICES": SERVICES,
            # Our machines look like containers to LocalStack, which would then write under /etc
            # and /var/lib; keep everything in the state folder instead.
            "OVERRIDE_IN_DOCKER": "0",
            "FILESYSTEM_ROOT": str(root),
            "LOCALSTACK_VOLUME_DIR": str(root / "volume"),
            # LocalStack's community edition keeps no data across restarts (persistence is a Pro
            # feature), so `up` provisions again each time it starts the runtime.
            "PERSISTENCE": "0",
            "LOCALSTACK_HOST": f"localhost:{url.port or 4566}",
            # Offline: no certificate download, no analytics, no DNS server on port 53.
            "SKIP_SSL_CERT_DOWNLOAD": "1",
            "DISABLE_EVENTS": "1",
            "DNS_ADDRESS": "0",
            "LOCALSTACK_CLI": "0",
            "DEBUG": "0",
        }
    )


def start_localstack(settings: Settings, wait: float = 60) -> ProcessInfo:
    """Start LocalStack's runtime unless the endpoint answers; wait for its health check."""
    assert settings.endpoint_url is not None
    require_own_stack(settings.endpoint_url)
    pidfile = PidFile(settings.state_dir, "localstack")
    ours = pidfile.read()
    if ours.running:
        # Started already (perhaps still starting, or too busy to answer at once): a second
        # runtime would fail to bind and take over the pid file, leaving the first one orphaned.
        return _await_health(settings, pidfile, ours, wait)
    if endpoint_answers(settings.endpoint_url):
        return pidfile.read()
    python = localstack_python()
    if not python.exists():
        raise ServiceUnavailable(
            f"LocalStack's runtime is not installed ({python} is missing)",
            hint="run `make setup`, or set NCAAS_LOCALSTACK_PYTHON",
        )
    tighten(settings.state_dir)  # also a folder an older version made readable by all
    process = _spawn(
        localstack_command(settings),
        localstack_env(settings),
        settings.state_dir / "localstack.log",
        private=True,
    )
    pidfile.write(process.pid, endpoint=settings.endpoint_url)
    if settings.chosen_endpoint and settings.endpoint_url != DEFAULT_ENDPOINT:
        record_endpoint(settings.endpoint_url, settings.state_dir)  # later commands find it
    return _await_health(settings, pidfile, pidfile.read(), wait)


def _await_health(
    settings: Settings, pidfile: PidFile, started: ProcessInfo, wait: float
) -> ProcessInfo:
    """``started``'s health check passes within ``wait`` seconds, or it is stopped and we say so."""
    assert settings.endpoint_url is not None
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if health_ok(settings.endpoint_url):
            return pidfile.read()
        if started.pid is None or not alive(started.pid):
            break
        time.sleep(0.2)
    tail = _tail(settings.state_dir / "localstack.log")
    pidfile.stop()
    raise ServiceUnavailable(
        f"LocalStack did not start at {settings.endpoint_url}",
        hint=f"see {settings.state_dir / 'localstack.log'}: {tail}",
    )


def start_dispatcher(settings: Settings, launcher: str) -> ProcessInfo:
    pidfile = PidFile(settings.state_dir, "dispatcher")
    info = pidfile.read()
    if info.running:
        return info
    assert settings.endpoint_url is not None
    command = [sys.executable, "-m", "ncaas_dev", "dispatch", "--launcher", launcher]
    process = _spawn(
        [*command, "--endpoint-url", settings.endpoint_url],
        child_env({"NCAAS_STATE_DIR": str(settings.state_dir)}),
        settings.state_dir / "dispatcher.log",
    )
    pidfile.write(process.pid, launcher=launcher, endpoint=settings.endpoint_url)
    time.sleep(0.3)
    if process.poll() is not None:
        pidfile.path.unlink(missing_ok=True)
        raise ServiceUnavailable(
            "the dispatcher exited at start",
            hint=f"see {settings.state_dir / 'dispatcher.log'}: "
            f"{_tail(settings.state_dir / 'dispatcher.log')}",
        )
    return pidfile.read()


def start_command_server(settings: Settings) -> ProcessInfo:
    """The warm command server (``cmdserver``) the ``ncaas-dev`` front end hands commands to."""
    pidfile = PidFile(settings.state_dir, "cmdserver")
    info = pidfile.read()
    if info.running:
        return info
    command = [sys.executable, "-m", "ncaas_dev.entry.cmdserver", str(settings.state_dir)]
    process = _spawn(
        [*command, *filter(None, [settings.endpoint_url])],
        child_env(),  # each command brings its caller's environment along
        settings.state_dir / "cmdserver.log",
    )
    pidfile.write(process.pid)
    return pidfile.read()


def start_standin(settings: Settings) -> ProcessInfo:
    """The EC2 stand-in: executes the user-data of instances launched on LocalStack."""
    pidfile = PidFile(settings.state_dir, "ec2-standin")
    info = pidfile.read()
    if info.running:
        return info
    assert settings.endpoint_url is not None
    log_path = settings.state_dir / "ec2-standin.log"
    process = _spawn(
        [sys.executable, "-m", "ncaas_dev.cloud.ec2.standin", settings.endpoint_url],
        child_env({"NCAAS_STATE_DIR": str(settings.state_dir)}),
        log_path,
    )
    pidfile.write(process.pid, endpoint=settings.endpoint_url)
    time.sleep(0.3)
    if process.poll() is not None:
        pidfile.path.unlink(missing_ok=True)
        raise ServiceUnavailable(
            "the EC2 stand-in exited at start", hint=f"see {log_path}: {_tail(log_path)}"
        )
    return pidfile.read()


def _spawn(
    command: list[str], env: dict[str, str], log_path: Path, private: bool = False
) -> subprocess.Popen[bytes]:
    """Start a daemon in its own session (it outlives this command), output to ``log_path``;
    ``private``: all it creates is its owner's alone (umask 077). Only LocalStack's spool gets
    that: runners keep the usual umask, since the analysis (a sandbox user when the runner is
    root) must read the inputs they fetch; the 0700 state folder above keeps them private."""
    private_dir(log_path.parent)
    with log_path.open("ab") as log:
        os.chmod(log_path, FILE_MODE)
        process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=log_path.parent,
            umask=0o077 if private else -1,
        )
    _DAEMONS.append(process)
    return process


def require_localstack(
    settings: Settings, wait: float = 0, say: Callable[[str], None] | None = None
) -> None:
    """Fail unless the endpoint answers; polled for up to ``wait`` seconds first (a LocalStack
    starting beside the dispatcher, or loading its first service, answers late)."""
    endpoint = settings.endpoint_url
    if not endpoint or endpoint_answers(endpoint):
        return
    deadline = time.monotonic() + wait
    if wait > 0 and say is not None:
        say(f"waiting up to {wait:g} s for LocalStack at {endpoint}")
    while time.monotonic() < deadline:
        time.sleep(0.5)
        if endpoint_answers(endpoint):
            return
    waited = f" within {wait:g} s" if wait > 0 else ""
    raise ServiceUnavailable(
        f"LocalStack does not answer at {endpoint}{waited}", hint=LOCALSTACK_HINT
    )


def _tail(path: Path, lines: int = 3) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"
