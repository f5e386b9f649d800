"""The front end hands commands to a warm command server, which runs them as the caller would.

A real server process on a socket of the test's own; commands that need no stack (``init``,
bad usage) show that the caller's working folder, environment, streams and exit codes are
the ones that count, and that a request the server must not serve runs in the caller instead.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ncaas_dev.front import request_bytes, socket_path

FRONT = [sys.executable, "-c", "from ncaas_dev.front import main; main()"]


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
        [sys.executable, "-m", "ncaas_dev.cmdserver", str(state), "http://127.0.0.1:9"],
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
            "import os; os.close(0); from ncaas_dev.front import main; main()",
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
