"""The Docker launcher's runner records: adopted when alive, reported when dead, killed when stuck.

Real processes stand in for runners (a runner is just a process to the launcher).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ncaas_dev.launchers.base import DatasetTask
from ncaas_dev.launchers.docker import (
    RUNNER_GRACE_SECONDS,
    DockerLauncher,
    _Live,
    process_start_ticks,
)

MakeTask = Callable[..., DatasetTask]


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    yield process
    process.kill()
    process.wait()


def leave_record(state_dir: Path, task: DatasetTask, pid: int, ticks: int | None) -> Path:
    """What a killed dispatcher leaves behind for one runner it launched."""
    folder = state_dir / "runners" / task.bucket / task.group / task.job
    folder.mkdir(parents=True)
    task_file = folder / f"{task.dataset}.task.json"
    task_file.write_text(task.model_dump_json())
    record = folder / f"{task.dataset}.runner.json"
    doc = {"pid": pid, "ticks": ticks, "runner": f"docker:pid{pid}", "task": str(task_file)}
    record.write_text(json.dumps({**doc, "launched": time.time()}))
    return record


def test_a_live_runner_of_an_earlier_dispatcher_is_adopted_and_counted(
    tmp_path: Path, make_task: MakeTask, sleeper: subprocess.Popen[bytes]
) -> None:
    task = make_task()
    record = leave_record(tmp_path, task, sleeper.pid, process_start_ticks(sleeper.pid))
    launcher = DockerLauncher(tmp_path)
    assert launcher.active(task.bucket) == 1 and launcher.adopted() == 1
    assert launcher.reap() == []
    sleeper.kill()
    sleeper.wait()
    ended = launcher.reap()
    assert [(f.runner, f.detail) for f in ended] == [
        (f"docker:pid{sleeper.pid}", "runner process vanished")
    ]
    assert launcher.active(task.bucket) == 0 and not record.exists()


def test_a_runner_that_died_while_no_dispatcher_watched_is_reported(
    tmp_path: Path, make_task: MakeTask
) -> None:
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    ticks = process_start_ticks(done.pid)
    done.wait()
    task = make_task()
    record = leave_record(tmp_path, task, done.pid, ticks)
    launcher = DockerLauncher(tmp_path)
    assert launcher.active(task.bucket) == 0
    ended = launcher.reap()
    assert len(ended) == 1 and ended[0].task.dataset == task.dataset
    assert "while no dispatcher watched" in ended[0].detail
    assert not record.exists()


def test_a_reused_pid_is_not_taken_for_the_runner(
    tmp_path: Path, make_task: MakeTask, sleeper: subprocess.Popen[bytes]
) -> None:
    ticks = process_start_ticks(sleeper.pid)
    assert ticks is not None
    task = make_task()
    leave_record(tmp_path, task, sleeper.pid, ticks - 1)  # same pid, another process
    launcher = DockerLauncher(tmp_path)
    assert launcher.active(task.bucket) == 0 and len(launcher.reap()) == 1


def test_a_runner_stuck_past_its_timeout_is_killed_and_reported(
    tmp_path: Path, make_task: MakeTask, sleeper: subprocess.Popen[bytes]
) -> None:
    task = make_task(run={"timeout": 5})
    launcher = DockerLauncher(tmp_path)
    launcher._adopted = True
    record = tmp_path / "r.runner.json"
    record.write_text("{}")
    launched = time.time() - 5 - RUNNER_GRACE_SECONDS - 1
    launcher._live.append(_Live(task, "docker:stuck", sleeper.pid, record, launched, sleeper))
    ended = launcher.reap()
    assert len(ended) == 1 and "past run.timeout; runner killed" in ended[0].detail
    assert sleeper.poll() is not None  # really killed


def test_a_cancelled_runner_gets_sigterm_then_its_containers_go_then_it_is_killed(
    tmp_path: Path, make_task: MakeTask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A runner that ignores the cancel request's SIGTERM (stuck outside the analysis): past
    the cancel grace its analysis containers are removed for it, past the runner grace it is
    killed and reported. Container removal is recorded, not done (no engine needed)."""
    from ncaas_dev.launchers import docker

    deaf = subprocess.Popen(
        [sys.executable, "-c", "import signal, sys, time\n"
         "signal.signal(signal.SIGTERM, lambda *a: print('TERM', flush=True))\n"
         "print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    assert deaf.stdout is not None and deaf.stdout.readline() == b"ready\n"
    removed: list[str] = []
    monkeypatch.setattr(docker, "remove_containers", lambda task: removed.append(task.label))
    task = make_task()
    launcher = DockerLauncher(tmp_path)
    launcher._adopted = True
    record = tmp_path / "r.runner.json"
    launcher._live.append(_Live(task, "docker:deaf", deaf.pid, record, time.time(), deaf))
    launcher.cancel(task, "docker:abc123")
    assert deaf.stdout.readline() == b"TERM\n"  # the runner was told
    launcher.cancel(task, "docker:abc123")  # again (a repeated request): no second signal
    assert launcher.reap() == [] and removed == []  # within the grace: left to the runner
    live = launcher._live[0]
    assert live.cancelled is not None
    live.cancelled -= docker.CANCEL_GRACE_SECONDS + 0.1
    assert launcher.reap() == [] and removed == [task.label]  # containers gone, runner kept
    live.cancelled -= RUNNER_GRACE_SECONDS
    ended = launcher.reap()
    assert len(ended) == 1 and "after a cancel request; runner killed" in ended[0].detail
    assert deaf.wait(timeout=5) is not None
    deaf.stdout.close()
    # A dataset without a runner of this launcher: its leftover containers are removed at once.
    other = make_task(dataset="other.bin")
    launcher.cancel(other, None)
    assert removed[-1] == other.label
