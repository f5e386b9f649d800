"""The command server: a warm Python that runs ``ncaas-dev`` commands for the front end.

It imports the heavy libraries and loads the AWS service models once, then forks a child per
command. The child takes over the caller's standard streams (passed as file descriptors), its
environment and working folder, starts a session of its own (so stopping the stack never
takes a running command with it), imports the CLI afresh (its consoles then see the caller's
terminal) and runs the command exactly as the front end would have. The server refuses (and
the front end runs the command itself) when the caller is another user, runs another
checkout or Python, or when this package's code, the interpreter or the installed
distributions changed since the server started; after the last, the server exits.

Each connection is served by a thread of its own with a read timeout, so a client that stalls
(or sends garbage) delays no other command; the thread waits for its command's process and
reports its exit status, 128+N for a death by signal N. One server per state folder: a second
one finds the first's lock taken and exits, leaving its socket alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import logging
import os
import signal
import socket
import struct
import sys
import threading
from pathlib import Path
from typing import Any

from .front import PACKAGE_DIR, socket_path

log = logging.getLogger(__name__)


READ_TIMEOUT_S = 5.0  # a client that sends no whole request in this time is dropped
LOCK_NAME = "command.lock"


def code_fingerprint() -> dict[str, int | str]:
    """What the server's code is made of: the package's modules (their mtimes), the
    interpreter (its version and binary) and the installed distributions (the mtime of every
    ``site-packages`` folder on the import path: installing, upgrading or removing a
    distribution adds or removes its ``*.dist-info`` there). Any change means the server is
    stale."""
    found: dict[str, int | str] = {
        str(p): p.stat().st_mtime_ns for p in sorted(Path(PACKAGE_DIR).rglob("*.py"))
    }
    found["python"] = sys.version
    executable = Path(os.path.realpath(sys.executable))
    with contextlib.suppress(OSError):
        info = executable.stat()
        found[f"interpreter {executable}"] = f"{info.st_ino}:{info.st_mtime_ns}"
    for entry in sys.path:  # only where distributions are installed: not the working folder
        folder = Path(entry)
        if folder.name not in ("site-packages", "dist-packages"):
            continue
        with contextlib.suppress(OSError):
            found[f"path {folder}"] = folder.stat().st_mtime_ns
    return found


def preload(endpoint_url: str | None) -> None:
    """Import what commands need, load the service models (the slow part of a client) and
    build the CLI's Click command, so that a forked command starts with all of it done."""
    import boto3  # noqa: F401
    import docker  # noqa: F401
    import pydantic.type_adapter  # noqa: F401  (Typer's coercion of int and Path options)
    import rich.table  # noqa: F401
    import typer  # noqa: F401

    from .. import blueprint, buildcache, client, containers, pricing  # noqa: F401
    from ..api import follow, job, jobs, project  # noqa: F401  (run, submit, jobs, logs)
    from ..aws import make_s3_client_ahead, sqs_client
    from ..cli.app import click_command
    from ..local import compose, provision, stack  # noqa: F401
    from ..settings import Settings

    click_command()
    containers.learn_api_version()
    settings = Settings.from_env(endpoint_url=endpoint_url)
    make_s3_client_ahead(settings)  # each forked command's first S3 client
    sqs_client(settings)


class Malformed(ValueError):
    """A request that is not what the front end sends."""


def _receive(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
    try:
        while len(data) < 4 or len(data) < 4 + struct.unpack("!I", data[:4])[0]:
            more = conn.recv(1 << 20)
            if not more:
                raise Malformed("the request ended early")
            data += more
        size = struct.unpack("!I", data[:4])[0]
        request = _checked(json.loads(data[4 : 4 + size]))
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return request, fds


def _checked(request: object) -> dict[str, Any]:
    """The request if it has the front end's shape (any JSON can arrive on the socket)."""
    if not isinstance(request, dict):
        raise Malformed(f"the request is a JSON {type(request).__name__}, not an object")
    shapes = {"argv": list, "env": dict, "cwd": str, "fds": list}
    for name, shape in shapes.items():
        if not isinstance(request.get(name), shape):
            raise Malformed(f"the request's {name!r} is not a {shape.__name__}")
    if not all(isinstance(a, str) for a in request["argv"]):
        raise Malformed("the request's 'argv' holds something other than strings")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in request["env"].items()):
        raise Malformed("the request's 'env' holds something other than strings")
    if not all(isinstance(fd, int) for fd in request["fds"]):
        raise Malformed("the request's 'fds' holds something other than numbers")
    return request


def _refusal(
    conn: socket.socket, request: dict[str, Any], code: dict[str, int | str]
) -> str | None:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _, uid, _ = struct.unpack("3i", creds)
    if uid != os.getuid():
        return f"caller uid {uid} is not the server's"
    if request.get("package") != PACKAGE_DIR:
        return "another checkout of ncaas-dev"
    if request.get("python") != sys.prefix:
        return "another Python environment"
    if code_fingerprint() != code:
        return "stale"
    return None


def _take_streams(request: dict[str, Any], fds: list[int]) -> None:
    """Make the caller's descriptors this process's 0, 1 and 2 (/dev/null for any it lacked)."""
    given = dict(zip(request.get("fds", []), fds, strict=False))
    for target in (0, 1, 2):
        source = given.get(target)
        if source is None:
            source = os.open(os.devnull, os.O_RDWR)
        os.dup2(source, target)
        os.close(source)
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
    for fd, name in ((1, "stdout"), (2, "stderr")):
        stream = io.TextIOWrapper(
            io.FileIO(fd, "w", closefd=False),
            encoding="utf-8",
            errors="backslashreplace",
            line_buffering=os.isatty(fd),
            write_through=fd == 2,
        )
        setattr(sys, name, stream)


def _run_child(conn: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
    """In the forked child: become the caller's command, report its exit status, exit."""
    code = 1
    try:
        os.setsid()
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _take_streams(request, fds)
        logging.getLogger().handlers.clear()
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        sys.argv = ["ncaas-dev", *request["argv"]]
        conn.sendall(f"pid {os.getpid()}\n".encode())
        conn.close()  # the server's thread reports the exit status, whatever ends this process
        # Descriptors inherited from the server (other callers' streams, its lock): holding
        # another caller's pipe open would keep that caller waiting for its end.
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        from ..cli.app import main

        try:
            main()
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if isinstance(e.code, str):
                sys.stderr.write(e.code + "\n")
        except KeyboardInterrupt:
            code = 130
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def exit_code(wait_status: int) -> int:
    """A shell's exit status for a wait status: the code, or 128+N for a death by signal N."""
    if os.WIFSIGNALED(wait_status):
        return 128 + os.WTERMSIG(wait_status)
    return os.waitstatus_to_exitcode(wait_status)


class Server:
    """Accept commands on the state folder's socket, each connection in a thread of its own."""

    def __init__(self, state_dir: Path) -> None:
        self.path = socket_path({"NCAAS_STATE_DIR": str(state_dir)})
        self.lock_path = state_dir / LOCK_NAME
        self.code: dict[str, int | str] = {}
        self.stale = threading.Event()
        self.listener: socket.socket | None = None

    def take_lock(self) -> int | None:
        """The state folder's server lock (held while the server lives), or None if another
        server holds it: that one's socket is then left alone."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def listen(self) -> socket.socket:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # a dead server's: the lock says no live one owns it
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_mask = os.umask(0o177)  # the socket is the owner's alone
        try:
            listener.bind(self.path)
        finally:
            os.umask(old_mask)
        listener.listen(16)
        listener.settimeout(0.5)  # to notice a stale server between connections
        self.listener = listener
        return listener

    def serve(self) -> None:
        listener = self.listen()
        log.info("serving commands on %s", self.path)
        while not self.stale.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn: socket.socket) -> None:
        """One connection: read the request (within the timeout), check it, run it, report."""
        with conn:
            conn.settimeout(READ_TIMEOUT_S)
            try:
                request, fds = _receive(conn)
            except (OSError, ValueError, UnicodeDecodeError, struct.error) as e:
                log.warning("bad request: %s", e or type(e).__name__)
                with contextlib.suppress(OSError):
                    conn.sendall(b"refused malformed request\n")
                return
            try:
                refused = _refusal(conn, request, self.code)
                if refused:
                    log.info("refused a command: %s", refused)
                    with contextlib.suppress(OSError):
                        conn.sendall(f"refused {refused}\n".encode())
                    if refused == "stale":
                        self.stale.set()  # `up` (or the next `run`) starts one with the new code
                    return
                child = os.fork()
                if child == 0:
                    if self.listener is not None:
                        self.listener.close()
                    _run_child(conn, request, fds)
            finally:
                for fd in fds:
                    os.close(fd)
            log.info("pid %d: ncaas-dev %s", child, " ".join(request["argv"]))
            _, status = os.waitpid(child, 0)
            with contextlib.suppress(OSError):
                conn.sendall(f"exit {exit_code(status)}\n".encode())


def serve(state_dir: Path, endpoint_url: str | None) -> int:
    """Accept commands until stopped (or until the package's code changes); 1 if another
    server already serves this state folder."""
    server = Server(state_dir)
    lock = server.take_lock()
    if lock is None:
        log.error("another command server already serves %s; leaving it alone", state_dir)
        return 1
    # `down` stops it with SIGTERM: leave through the finally below (socket removed, lock let go).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        preload(endpoint_url)
        server.code = code_fingerprint()
        server.serve()
    finally:
        if server.listener is not None:
            server.listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(server.path)
        os.close(lock)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m ncaas_dev.entry.cmdserver STATE_DIR [ENDPOINT]``."""
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s cmdserver %(message)s")
    return serve(Path(args[0]), args[1] if len(args) > 1 else None)


if __name__ == "__main__":
    sys.exit(main())
