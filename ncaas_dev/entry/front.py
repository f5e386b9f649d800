"""The ``ncaas-dev`` command's entry point: a warm command server runs it when one serves this
state folder, else this process does.

Starting Python and importing boto3, Docker's SDK, pydantic and Typer takes most of a second
on a small machine, which is more than the analysis of a quick ``ncaas-dev run`` takes. The
stack's command server (``ncaas_dev.entry.cmdserver``, started by ``up``) has done all of that once;
this front end imports only the standard library, hands the server its arguments, working
folder, environment and its standard input, output and error (the file descriptors
themselves), and waits for the exit code (128+N if the command died of signal N). It sends
nothing before the kernel confirms that the socket's server runs as this user (SO_PEERCRED).
Anything amiss (no server, another user's, another checkout's, code or distributions changed
since it started) and the command simply runs here. ``NCAAS_NO_COMMAND_SERVER=1`` always runs
it here.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import sys

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # ncaas_dev/
SOCKET_NAME = "command.sock"
# Commands whose own start-up is already a small fraction of a second (they import no boto3
# or Docker SDK: see tests/unit/test_cli_startup.py) gain nothing from a fork of the server;
# `dispatch` is the long-running loop itself, and `web` a long-running server.
RUN_HERE = {"status", "down", "init", "dispatch", "web", "--version", "--help", "-h"}


def _served(argv: list[str]) -> bool:
    command = next((a for a in argv if not a.startswith("-")), None)
    return not (set(argv) & {"--help", "-h"} or (command or "--help") in RUN_HERE)


def socket_path(environ: dict[str, str] | os._Environ[str] = os.environ) -> str:
    state = environ.get("NCAAS_STATE_DIR") or os.path.join("~", ".ncaas-dev")
    return os.path.join(os.path.expanduser(state), SOCKET_NAME)


def _open_fds() -> list[int]:
    """Which of standard input, output and error this process has (CI may give no stdin)."""
    found = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            found.append(fd)
        except OSError:
            continue
    return found


def _read_line(sock: socket.socket) -> bytes:
    line = b""
    while not line.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        line += chunk
    return line


def request_bytes(argv: list[str], fds: list[int]) -> bytes:
    doc = {
        "argv": argv,
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "package": PACKAGE_DIR,
        "python": sys.prefix,
        "fds": fds,
    }
    body = json.dumps(doc).encode()
    return struct.pack("!I", len(body)) + body


def _ours(sock: socket.socket) -> bool:
    """Whether the process listening on the socket runs as this user (the kernel's word)."""
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return False
    _, uid, _ = struct.unpack("3i", creds)
    return bool(uid == os.getuid())


def _forward_signals(pid: int) -> None:
    """The command runs in a session of its own, beyond the terminal's job control: pass it
    what the terminal sends this process. Stopped (^Z), this process stops its command, then
    itself; continued (fg), both continue. A resized window is passed on; the command reads
    the new size from the terminal it shares with this process."""

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(OSError):
            os.kill(pid, signum)

    def stop(signum: int, _frame: object) -> None:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTSTP)
        os.kill(os.getpid(), signal.SIGSTOP)  # SIGTSTP is handled here: stop for real

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGWINCH):
        signal.signal(signum, forward)
    signal.signal(signal.SIGCONT, forward)
    signal.signal(signal.SIGTSTP, stop)


def via_server(argv: list[str]) -> int | None:
    """The command's exit code as the server ran it; None if no server would run it."""
    if os.environ.get("NCAAS_NO_COMMAND_SERVER") or not _served(argv):
        return None
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(socket_path())
    except OSError:
        return None
    with sock:
        if not _ours(sock):
            return None  # the environment (AWS keys too) goes to no one else's process
        fds = _open_fds()
        try:
            socket.send_fds(sock, [request_bytes(argv, fds)], fds)
            answer = _read_line(sock)
        except OSError:
            return None
        if not answer.startswith(b"pid "):
            return None  # refused (stale code, another checkout): run it here
        pid = int(answer[4:])
        _forward_signals(pid)
        ended = _read_line(sock)
    if ended.startswith(b"exit "):
        return int(ended[5:])
    sys.stderr.write("error: the command ended without an exit status (see the server's log)\n")
    return 1


def main() -> None:
    code = via_server(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    from ..cli.app import main as run_here

    run_here()
