"""The command server: a warm Python that runs ``ncaas-dev`` commands for the front end.

It imports the heavy libraries and loads the AWS service models once, then forks a child per
command. The child takes over the caller's standard streams (passed as file descriptors), its
environment and working folder, starts a session of its own (so stopping the stack never
takes a running command with it), imports the CLI afresh (its consoles then see the caller's
terminal) and runs the command exactly as the front end would have. The server refuses (and
the front end runs the command itself) when the caller is another user, runs another
checkout or Python, or when this package's code changed since the server started; after the
last, the server exits.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import signal
import socket
import struct
import sys
from pathlib import Path
from typing import Any

from .front import PACKAGE_DIR, socket_path

log = logging.getLogger(__name__)


def code_fingerprint() -> dict[str, int]:
    """Modification times of the package's modules: a change means the server is stale."""
    return {str(p): p.stat().st_mtime_ns for p in sorted(Path(PACKAGE_DIR).rglob("*.py"))}


def preload(endpoint_url: str | None) -> None:
    """Import what commands need and load the service models (the slow part of a client)."""
    import boto3  # noqa: F401
    import docker  # noqa: F401
    import rich.console  # noqa: F401
    import typer  # noqa: F401

    from . import blueprint, buildcache, client, containers, provision, stack  # noqa: F401
    from .aws import s3_client, sqs_client
    from .settings import Settings

    settings = Settings.from_env(endpoint_url=endpoint_url)
    s3_client(settings)
    sqs_client(settings)


def _receive(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
    while len(data) < 4 or len(data) < 4 + struct.unpack("!I", data[:4])[0]:
        more = conn.recv(1 << 20)
        if not more:
            raise ConnectionError("the request ended early")
        data += more
    size = struct.unpack("!I", data[:4])[0]
    return json.loads(data[4 : 4 + size]), fds


def _refusal(conn: socket.socket, request: dict[str, Any], code: dict[str, int]) -> str | None:
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
        from .cli.app import main

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
        with contextlib.suppress(OSError):
            conn.sendall(f"exit {code}\n".encode())
        os._exit(code)


def serve(state_dir: Path, endpoint_url: str | None) -> None:
    """Accept commands until stopped (or until the package's code changes)."""
    preload(endpoint_url)
    code = code_fingerprint()
    path = socket_path({"NCAAS_STATE_DIR": str(state_dir)})
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_mask = os.umask(0o177)  # the socket is the owner's alone
    try:
        listener.bind(path)
    finally:
        os.umask(old_mask)
    listener.listen(16)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    log.info("serving commands on %s", path)
    try:
        while True:
            conn, _ = listener.accept()
            with conn:
                try:
                    request, fds = _receive(conn)
                except (OSError, ValueError) as e:
                    log.warning("bad request: %s", e)
                    continue
                refused = _refusal(conn, request, code)
                if refused:
                    log.info("refused a command: %s", refused)
                    with contextlib.suppress(OSError):
                        conn.sendall(f"refused {refused}\n".encode())
                    for fd in fds:
                        os.close(fd)
                    if refused == "stale":
                        return  # `up` (or the next `run`) starts a server with the new code
                    continue
                child = os.fork()
                if child == 0:
                    listener.close()
                    _run_child(conn, request, fds)
                log.info("pid %d: ncaas-dev %s", child, " ".join(request["argv"]))
                for fd in fds:
                    os.close(fd)
    finally:
        listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def main(argv: list[str] | None = None) -> int:
    """``python -m ncaas_dev.cmdserver STATE_DIR [ENDPOINT]``."""
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s cmdserver %(message)s")
    serve(Path(args[0]), args[1] if len(args) > 1 else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
