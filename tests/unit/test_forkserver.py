"""The runner fork server: a fork per task, in a session of its own, logging next to its task,
its end reported with its exit status; end of input stops the server, not its runners."""

from __future__ import annotations

import os
from pathlib import Path

from waiting import wait_until

from ncaas_dev.launchers.forking import ForkServer


def test_a_fork_runs_the_task_in_its_own_session_and_its_end_is_reported(
    tmp_path: Path,
) -> None:
    server = ForkServer("http://127.0.0.1:9", tmp_path / "forkserver.log")
    try:
        task = tmp_path / "d.task.json"  # no such file: the runner fails at once, exit 1
        pid = server.fork(task)
        assert pid is not None and pid != os.getpid()
        status = server.exit_status(pid, wait=30)
        assert status == 1
        log = task.with_suffix(".runner.log").read_text()
        assert "d.task.json" in log and "Traceback" in log
        second = server.fork(task)
        assert second is not None and second != pid  # one server, many forks
        assert server.exit_status(second, wait=30) == 1
    finally:
        server.close()


def test_a_runner_outlives_its_server(tmp_path: Path) -> None:
    server = ForkServer(None, tmp_path / "forkserver.log")
    fifo = tmp_path / "d.task.json"
    os.mkfifo(fifo)  # the runner blocks reading its task until this test writes it
    pid = server.fork(fifo)
    assert pid is not None
    wait_until(lambda: _session(pid) == pid, 30, "the runner in a session of its own")
    server.close()  # end of input: the server exits (close waits for it)
    assert _session(pid) == pid  # the runner goes on
    with fifo.open("w") as f:  # now it reads a task that is not one, and ends
        f.write("{}")
    wait_until(lambda: _session(pid) is None, 30, "the runner ended")


def _session(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else int(fields[3])
