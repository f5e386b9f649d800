"""The Docker launcher's runner fork server: one warm Python that forks a runner per task.

A runner's start-up (Python, boto3, Docker's SDK, pydantic, the S3 model) takes about 0.4 s
of a core. Paid per launch, by a spare started after each launch, it took that CPU from the
launches, containers and commands around it; a launch that found its spare still starting
waited for it. The server pays it once: the launcher writes a task file's path on its stdin,
the server forks, and the child runs the task as ``python -m ncaas_dev.runner TASK`` would,
in a session of its own (so it finishes its dataset whatever happens to the dispatcher or to
this server) and logging next to its task. One child is always forked ahead, its clients made,
so a task waits neither for imports nor for clients. Each task is answered ``pid PID`` on
stdout, and each child's end ``exit PID WAITSTATUS``. End of input: the server exits, its
runners go on.

The server stays single-threaded (a fork of a threaded process can inherit a held lock) and
holds no connection (a child must not share a socket with its siblings): it imports, loads
the S3 model into the process's boto3 session, which every child's client reuses, and learns
the Docker engine's API version (a connection closed before any fork), so that a child's
Docker client only pings the engine.
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import signal
import sys
from pathlib import Path

POLL_SECONDS = 1.0  # a child's end wakes the loop sooner (SIGCHLD)


def _preload(endpoint_url: str | None) -> None:
    from ..aws import s3_client
    from ..containers import learn_api_version
    from ..settings import Settings
    from . import runner  # noqa: F401 (the imports every child needs)

    s3_client(Settings.from_env(endpoint_url=endpoint_url, cloud=endpoint_url is None))
    learn_api_version()


def _child(endpoint_url: str | None, task_pipe: int) -> None:
    """In a forked child: make the clients, wait for a task's path on ``task_pipe``, then
    become its runner; never returns. The server keeps one such child ready, so a task finds
    its clients made."""
    code = 1
    try:
        os.setsid()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        random.seed()  # siblings must not draw the same retry delays
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1):
            os.dup2(null, fd)  # stderr stays the server's log until the task is known
        os.dup2(task_pipe, 3)
        os.closerange(4, 1 << 16)  # the server's pipes stay the server's
        from .runner import make_clients, run_task

        clients = make_clients(endpoint_url)
        with os.fdopen(3, "rb") as pipe:
            line = pipe.readline().decode().strip()
        if not line:
            code = 0  # the server went away without a task for this child
            return
        task_file = Path(line)
        log = os.open(task_file.with_suffix(".runner.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        code = run_task(task_file, clients)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:  # whatever it was, the child must not return
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _prefork(endpoint_url: str | None) -> tuple[int, int]:
    """A child made ready for the next task: its pid and the pipe to give it the task on."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(write)
        _child(endpoint_url, read)
    os.close(read)
    return pid, write


def _reap(out: int) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        os.write(out, f"exit {pid} {status}\n".encode())


def serve(endpoint_url: str | None) -> int:
    _preload(endpoint_url)
    # A child's end wakes the loop at once (SIGCHLD writes to this pipe): the launcher, which
    # sees the zombie, waits for its exit status no longer than that.
    woken, wake = os.pipe()
    os.set_blocking(wake, False)
    signal.set_wakeup_fd(wake)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    out = sys.stdout.fileno()
    ready = _prefork(endpoint_url)
    os.write(out, b"ready\n")
    pending = b""
    while True:
        readable, _, _ = select.select([0, woken], [], [], POLL_SECONDS)
        if woken in readable:
            os.read(woken, 4096)
        _reap(out)
        if 0 not in readable:
            continue
        chunk = os.read(0, 4096)
        if not chunk:
            os.close(ready[1])  # the ready child ends; the runners go on without this server
            return 0
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            if not line.strip():
                continue
            pid, pipe = ready
            try:
                os.write(pipe, line + b"\n")  # a dead child's pipe refuses: fork afresh
            except OSError:
                os.close(pipe)
                pid, pipe = _prefork(endpoint_url)
                os.write(pipe, line + b"\n")
            os.close(pipe)
            os.write(out, f"pid {pid}\n".encode())
            ready = _prefork(endpoint_url)


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] else None))
