"""The front end hands commands to a warm command server, which runs them as the caller would.

A real server process on a socket of the test's own; commands that need no stack (``init``,
bad usage) show that the caller's working folder, environment, streams and exit codes are
the ones that count, and that a request the server must not serve runs in the caller instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ncaas_dev.entry import cmdserver, front
from ncaas_dev.entry.front import request_bytes, socket_path

FRONT = [sys.executable, "-c", "from ncaas_dev.entry.front import main; main()"]


def served(env: dict[str, str]) -> list[str]:
    """The commands the server ran (its log names each one it forked a child for)."""
    log = Path(env["NCAAS_STATE_DIR"]) / "cmdserver.log"
    return [
        line.split(": ncaas-dev ", 1)[1]
        for line in log.read_text().splitlines()
        if ": ncaas-dev " in line
    ]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A command server on a state folder of the test's own; yields the callers' environment."""
    state = tmp_path / "state"
    state.mkdir()
    env = {**os.environ, "NCAAS_STATE_DIR": str(state), "COLUMNS": "200"}
    env.pop("NCAAS_NO_COMMAND_SERVER", None)
    log = (state / "cmdserver.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "ncaas_dev.entry.cmdserver", str(state), "http://127.0.0.1:9"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while not Path(socket_path(env)).exists():
        assert process.poll() is None, (state / "cmdserver.log").read_text()
        assert time.monotonic() < deadline, "the command server never listened"
        time.sleep(0.05)
    yield env
    process.terminate()
    process.wait(timeout=10)
    log.close()
    assert not Path(socket_path(env)).exists(), "a stopped server leaves no socket behind"


def test_a_served_command_works_in_the_callers_folder(
    server: dict[str, str], tmp_path: Path
) -> None:
    work = tmp_path / "work"
    (work / "bp").mkdir(parents=True)
    (work / "bp" / "blueprint.yaml").write_text("analysis: Not_A_Bucket\n")
    result = subprocess.run(
        [*FRONT, "run", "bp", "--data", "rec.bin"],
        cwd=work,
        env=server,
        capture_output=True,
        text=True,
    )
    # The relative folder was found from the caller's folder: the error is about its content.
    assert result.returncode == 2, result.stderr
    assert "analysis" in result.stderr and "blueprint.yaml" in result.stderr, result.stderr
    assert served(server) == ["run bp --data rec.bin"]


def test_bad_usage_keeps_its_exit_code_and_message(server: dict[str, str], tmp_path: Path) -> None:
    result = subprocess.run(
        [*FRONT, "run", str(tmp_path / "nowhere"), "--data", str(tmp_path / "x")],
        env=server,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "nowhere" in result.stderr
    assert len(served(server)) == 1


def test_a_caller_without_standard_input_is_served(server: dict[str, str]) -> None:
    args = ["jobs", "/nowhere/bp"]
    result = subprocess.run(
        [*FRONT, *args], env=server, stdin=subprocess.DEVNULL, capture_output=True
    )
    closed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os; os.close(0); from ncaas_dev.entry.front import main; main()",
            *args,
        ],
        env=server,
        capture_output=True,
    )
    assert result.returncode == closed.returncode != 0
    assert result.stderr.strip() and result.stderr == closed.stderr
    assert served(server) == ["jobs /nowhere/bp", "jobs /nowhere/bp"]


def test_light_commands_run_in_the_caller(server: dict[str, str]) -> None:
    for args in (["--version"], ["--help"], ["run", "--help"], ["status", "--json"]):
        result = subprocess.run([*FRONT, *args], env=server, capture_output=True, text=True)
        assert result.returncode in (0, 1), result.stderr  # status: 1 when no stack answers
    assert served(server) == []


def test_another_checkout_is_refused_so_the_caller_runs_the_command_itself(
    server: dict[str, str],
) -> None:
    request = json.loads(request_bytes(["jobs", "x"], [])[4:])
    request["package"] = "/somewhere/else/ncaas_dev"
    body = json.dumps(request).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(socket_path(server))
        sock.sendall(struct.pack("!I", len(body)) + body)
        answer = sock.makefile("rb").readline()
    assert answer == b"refused another checkout of ncaas-dev\n"
    assert served(server) == []


def test_without_a_server_the_command_runs_in_the_caller(tmp_path: Path) -> None:
    env = {**os.environ, "NCAAS_STATE_DIR": str(tmp_path / "no-server")}
    result = subprocess.run([*FRONT, "--version"], env=env, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip()


def send(env: dict[str, str], payload: bytes, fds: list[int] | None = None) -> list[bytes]:
    """Send raw bytes as a request; the server's answer lines."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(socket_path(env))
        socket.send_fds(sock, [payload], fds or [])
        with sock.makefile("rb") as answers:
            return answers.readlines()


def framed(doc: object) -> bytes:
    body = json.dumps(doc).encode()
    return struct.pack("!I", len(body)) + body


def test_malformed_requests_never_kill_the_server(server: dict[str, str]) -> None:
    good = json.loads(request_bytes(["jobs", "x"], [])[4:])
    for payload in (
        framed(["not", "an", "object"]),
        framed("a string"),
        framed({**good, "argv": "jobs x"}),
        framed({**good, "env": {"A": 1}}),
        struct.pack("!I", 5) + b"\xff\xfe{}x",
        b"garbage that is no frame at all",
    ):
        answer = send(server, payload)
        assert answer in ([b"refused malformed request\n"], []), answer
    ok = subprocess.run([*FRONT, "jobs", "/nowhere/bp"], env=server, capture_output=True)
    assert ok.returncode != 0 and served(server) == ["jobs /nowhere/bp"]


def test_a_stalled_client_blocks_no_other_command(server: dict[str, str]) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stalled:
        stalled.connect(socket_path(server))
        stalled.sendall(b"\x00\x00")  # half a header, then nothing
        started = time.monotonic()
        result = subprocess.run([*FRONT, "jobs", "/nowhere/bp"], env=server, capture_output=True)
        took = time.monotonic() - started
        assert served(server) == ["jobs /nowhere/bp"], result.stderr
        assert took < cmdserver.READ_TIMEOUT_S, took  # not held behind the stalled one


def test_a_command_killed_by_a_signal_exits_128_plus_n(server: dict[str, str]) -> None:
    request = json.loads(request_bytes(["jobs", "/nowhere/bp"], [])[4:])
    request["env"] = server
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(socket_path(server))
        socket.send_fds(sock, [framed(request)], [])
        with sock.makefile("rb") as answers:
            pid = int(answers.readline().split()[1])
            os.kill(pid, signal.SIGSTOP)  # caught before it can finish on its own
            os.kill(pid, signal.SIGKILL)
            assert answers.readline() == f"exit {128 + signal.SIGKILL}\n".encode()


def test_a_second_server_is_refused_and_leaves_the_first_ones_socket(
    server: dict[str, str],
) -> None:
    state = server["NCAAS_STATE_DIR"]
    before = os.stat(socket_path(server)).st_ino
    second = subprocess.run(
        [sys.executable, "-m", "ncaas_dev.entry.cmdserver", state, "http://127.0.0.1:9"],
        env=server,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1 and "already serves" in second.stderr, second.stderr
    assert os.stat(socket_path(server)).st_ino == before
    ok = subprocess.run([*FRONT, "jobs", "/nowhere/bp"], env=server, capture_output=True)
    assert ok.returncode != 0 and served(server) == ["jobs /nowhere/bp"]


def test_the_fingerprint_covers_interpreter_and_installed_distributions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "lib" / "site-packages"
    site.mkdir(parents=True)
    monkeypatch.setattr(sys, "path", [*sys.path, str(site)])
    before = cmdserver.code_fingerprint()
    assert before["python"] == sys.version
    assert any(k.startswith("interpreter ") for k in before)
    os.utime(site, ns=(1, 1))  # as if long ago
    older = cmdserver.code_fingerprint()
    (site / "boto3-9.9.9.dist-info").mkdir()  # what an upgrade does to the folder
    assert cmdserver.code_fingerprint() != older


def test_the_client_sends_nothing_to_a_socket_of_another_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state" / "command.sock"
    path.parent.mkdir()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    monkeypatch.setenv("NCAAS_STATE_DIR", str(path.parent))
    monkeypatch.delenv("NCAAS_NO_COMMAND_SERVER", raising=False)
    real_uid = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: real_uid + 1)  # the listener is then not "ours"
    try:
        assert front.via_server(["jobs", "x"]) is None
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(2)
            assert conn.recv(1) == b""  # connected, then closed: not one byte sent
    finally:
        listener.close()


FORWARDING = """
import os, signal, subprocess, sys, time
from ncaas_dev.entry.front import _forward_signals
child = subprocess.Popen([sys.executable, "-c", '''
import signal, sys, time
out = open(sys.argv[1], "a", buffering=1)
for s in (signal.SIGWINCH, signal.SIGTSTP, signal.SIGCONT):
    signal.signal(s, lambda n, f: out.write(signal.Signals(n).name + "\\\\n"))
print("ready", flush=True)
time.sleep(60)
''', sys.argv[1]], stdout=subprocess.PIPE)
child.stdout.readline()
_forward_signals(child.pid)
print(child.pid, flush=True)
time.sleep(60)
"""


def test_job_control_signals_and_resizes_are_forwarded(tmp_path: Path) -> None:
    seen = tmp_path / "signals"
    front_end = subprocess.Popen(
        [sys.executable, "-c", FORWARDING, str(seen)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert front_end.stdout is not None
        child = int(front_end.stdout.readline())

        def wait_for(names: list[str]) -> None:
            deadline = time.monotonic() + 20
            while not (seen.exists() and seen.read_text().split() == names):
                assert time.monotonic() < deadline, seen.read_text() if seen.exists() else ""
                time.sleep(0.02)

        os.kill(front_end.pid, signal.SIGWINCH)
        wait_for(["SIGWINCH"])
        os.kill(front_end.pid, signal.SIGTSTP)  # ^Z: the command, then the front end stop
        wait_for(["SIGWINCH", "SIGTSTP"])
        deadline = time.monotonic() + 20
        while Path(f"/proc/{front_end.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
            assert time.monotonic() < deadline, "the front end did not stop"
            time.sleep(0.02)
        os.kill(front_end.pid, signal.SIGCONT)  # fg
        wait_for(["SIGWINCH", "SIGTSTP", "SIGCONT"])
    finally:
        front_end.kill()
        front_end.wait()
        if front_end.stdout is not None:
            front_end.stdout.close()
        with contextlib.suppress(ProcessLookupError, UnboundLocalError):
            os.kill(child, signal.SIGKILL)
