"""Stopping a daemon leaves nothing of it running, whatever its shutdown does."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from ncaas_dev.local.stack import PidFile
from ncaas_dev.processes import alive


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # Zombies of ours still count for killpg(0); only live members matter.
    return any(
        alive(int(p.name))
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and _pgid(int(p.name)) == pgid
    )


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def test_stop_kills_a_daemon_that_ignores_sigterm_and_its_children(tmp_path: Path) -> None:
    # A leader that shrugs off SIGTERM, with a child in its group: both must go.
    daemon = subprocess.Popen(
        ["/bin/bash", "-c", "trap '' TERM; sleep 300 & wait"], start_new_session=True
    )
    pidfile = PidFile(tmp_path, "daemon")
    pidfile.write(daemon.pid)
    time.sleep(0.2)
    assert _group_alive(daemon.pid)
    assert pidfile.stop(timeout=0.5) is True
    daemon.wait(timeout=5)
    deadline = time.monotonic() + 5
    while _group_alive(daemon.pid):
        assert time.monotonic() < deadline, "a member of the daemon's group outlived stop()"
        time.sleep(0.05)
    assert not pidfile.path.exists()


def test_stop_of_nothing_running_says_so(tmp_path: Path) -> None:
    assert PidFile(tmp_path, "nothing").stop() is False


def test_a_process_whose_main_thread_exited_is_still_alive_and_is_stopped(tmp_path: Path) -> None:
    """Its leader looks like a zombie while another thread runs on (seen with LocalStack)."""
    script = (
        "import ctypes, threading, time\n"
        "threading.Thread(target=time.sleep, args=(300,)).start()\n"
        "time.sleep(0.1)\n"
        "ctypes.CDLL(None).syscall(60, 0)  # exit(2): this thread only, not the process\n"
    )
    daemon = subprocess.Popen(["python3", "-c", script], start_new_session=True)

    def leader() -> str:
        return Path(f"/proc/{daemon.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]

    deadline = time.monotonic() + 20  # Python's start-up is slow on a busy machine
    while leader() != "Z" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert leader() == "Z"  # what fooled the old check
    assert alive(daemon.pid)
    pidfile = PidFile(tmp_path, "daemon")
    pidfile.write(daemon.pid)
    assert pidfile.stop(timeout=0.5) is True
    daemon.wait(timeout=5)
    assert not _group_alive(daemon.pid)


def test_a_runtime_already_starting_is_awaited_not_started_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second runtime would fail to bind and take over the pid file, orphaning the first."""
    from ncaas_dev.errors import ServiceUnavailable
    from ncaas_dev.local.stack import start_localstack
    from ncaas_dev.settings import Settings

    # Spawning would fail loudly ("not installed"); waiting on the running one must not spawn.
    monkeypatch.setenv("NCAAS_LOCALSTACK_PYTHON", str(tmp_path / "no-python"))
    starting = subprocess.Popen(["sleep", "300"], start_new_session=True)
    PidFile(tmp_path, "localstack").write(starting.pid)
    settings = Settings(endpoint_url=f"http://127.0.0.1:{_closed_port()}", state_dir=tmp_path)
    with pytest.raises(ServiceUnavailable, match="did not start"):
        start_localstack(settings, wait=0.5)
    starting.wait(timeout=5)  # the one that never became healthy was stopped, not left behind


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
