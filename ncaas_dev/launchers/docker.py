"""The local launcher: one runner process per dataset, each running one Docker container.

Runners are separate processes (as on EC2, where user-data starts the same runner), so a
crash in one cannot take the dispatcher down, and they start in their own session so they
finish their dataset even if the dispatcher is killed. A fork server (``runs/forkserver.py``)
with the runner's imports done forks each one, which takes Python's start-up (about 0.4 s of
a core) off each launch.

Each launch leaves a record (``{dataset}.runner.json``: pid and the process's start time)
next to its task file. A dispatcher started on the same state folder adopts the runners an
earlier one left running, so they count against the concurrency cap, and reports those that
died meanwhile, so their datasets end ``failed`` instead of ``running`` forever.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..errors import NcaasError
from .base import DatasetTask, Finished
from .forking import ForkServer

log = logging.getLogger(__name__)
# A runner still alive this long past its dataset's run.timeout is stuck (it kills its
# container at the timeout itself): the launcher kills it and reports it lost.
RUNNER_GRACE_SECONDS = 300
# After a cancel request's SIGTERM, the runner removes the container itself (well under a
# second); one that has not after this long (busy outside the analysis, stuck) has the analysis
# containers removed for it, and it is killed past RUNNER_GRACE_SECONDS.
CANCEL_GRACE_SECONDS = 3.0


def process_start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (None if gone): pid reuse guard."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None  # a zombie has finished its work
    return int(fields[19])


@dataclass
class _Live:
    task: DatasetTask
    runner: str
    pid: int
    record: Path
    launched: float  # wall-clock seconds
    process: subprocess.Popen[bytes] | None = None  # None: adopted from an earlier dispatcher
    log: IO[bytes] | None = None
    ticks: int | None = None
    cancelled: float | None = None  # wall-clock time of the cancel request's SIGTERM
    forked: bool = False  # by this launcher's fork server
    containers_removed: bool = False

    def exit_code(self, forks: ForkServer) -> tuple[bool, int | None]:
        """(ended, exit code if known)."""
        if self.process is not None:
            code = self.process.poll()
            return code is not None, code
        if process_start_ticks(self.pid) == self.ticks:
            return False, None
        # A forked runner's end is reported by its server at once (a zombie until).
        return True, forks.exit_status(self.pid, wait=0.1) if self.forked else None


@dataclass
class DockerLauncher:
    state_dir: Path
    endpoint_url: str | None = None  # the fork server loads the S3 model for it in advance
    _live: list[_Live] = field(default_factory=list)
    _forks: ForkServer | None = None
    _adopted: bool = False
    _found_dead: list[Finished] = field(default_factory=list)
    name: str = "docker"
    runner_announces_itself: bool = True

    @property
    def runners_dir(self) -> Path:
        return self.state_dir / "runners"

    @property
    def forks(self) -> ForkServer:
        if self._forks is None:
            self._forks = ForkServer(self.endpoint_url, self.runners_dir / "forkserver.log")
        return self._forks

    def warm(self) -> None:
        """Start the fork server before the first launch."""
        try:
            self.forks.start()
        except OSError as e:
            log.warning("could not start the runner fork server: %s", e)  # launches still work

    def launch(self, task: DatasetTask) -> str:
        self._adopt()
        folder = self.runners_dir / task.bucket / task.group / task.job
        folder.mkdir(parents=True, exist_ok=True)
        task_file = folder / f"{task.dataset}.task.json"
        task_file.write_text(task.model_dump_json())
        record = folder / f"{task.dataset}.runner.json"
        pid = self.forks.fork(task_file)
        if pid is not None:
            live = _Live(task, f"docker:pid{pid}", pid, record, time.time(), forked=True)
            live.ticks = process_start_ticks(pid)
        else:
            live = self._spawn(task, task_file, record)
        self._write_record(live, task_file)
        self._live.append(live)
        return live.runner

    @staticmethod
    def _spawn(task: DatasetTask, task_file: Path, record: Path) -> _Live:
        """A runner started the slow way (a new Python), when the fork server cannot."""
        log_file = task_file.with_suffix(".runner.log").open("ab")
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "ncaas_dev.runner", str(task_file)],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as e:
            log_file.close()
            raise NcaasError(f"could not start a runner process: {e}") from e
        pid = process.pid
        ticks = process_start_ticks(pid)
        return _Live(task, f"docker:pid{pid}", pid, record, time.time(), process, log_file, ticks)

    @staticmethod
    def _write_record(live: _Live, task_file: Path) -> None:
        doc = {
            "pid": live.pid,
            "ticks": live.ticks,
            "runner": live.runner,
            "task": str(task_file),
            "launched": live.launched,
        }
        tmp = live.record.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        tmp.replace(live.record)  # a reader never sees half a record

    def _adopt(self) -> None:
        """Once: take over the runners an earlier dispatcher on this state folder left."""
        if self._adopted:
            return
        self._adopted = True
        for record in sorted(self.runners_dir.glob("**/*.runner.json")):
            try:
                doc = json.loads(record.read_text())
                task = DatasetTask.model_validate_json(Path(doc["task"]).read_text())
            except (OSError, ValueError, KeyError) as e:
                log.warning("skipping runner record %s: %s", record, e)
                record.unlink(missing_ok=True)
                continue
            pid, ticks = int(doc["pid"]), doc.get("ticks")
            runner = str(doc.get("runner", f"docker:pid{pid}"))
            if ticks is not None and process_start_ticks(pid) == ticks:
                self._live.append(
                    _Live(
                        task,
                        runner,
                        pid,
                        record,
                        float(doc.get("launched", time.time())),
                        ticks=ticks,
                    )
                )
                log.info("adopted runner %s of %s", runner, task.label)
            else:
                self._found_dead.append(
                    Finished(task, runner, None, "runner process ended while no dispatcher watched")
                )
                record.unlink(missing_ok=True)

    def adopted(self) -> int:
        """How many live runners this launcher took over (adopting now if not yet done)."""
        self._adopt()
        return sum(1 for live in self._live if live.process is None)

    def active(self, analysis: str) -> int:
        self._adopt()
        return sum(1 for live in self._live if live.task.bucket == analysis)

    def cancel(self, task: DatasetTask, runner: str | None) -> None:
        """SIGTERM the dataset's runner: it stops the analysis, removes its container and
        uploads the partial outputs (``stopping.Stopped``); ``reap`` enforces the graces."""
        self._adopt()
        found = [live for live in self._live if live.task.label == task.label]
        for live in found:
            if live.cancelled is None:
                live.cancelled = time.time()
                with contextlib.suppress(ProcessLookupError):
                    os.kill(live.pid, signal.SIGTERM)
        if not found:  # no runner of ours: whatever analysis container is left goes
            remove_containers(task)

    def _enforce_cancel(self, live: _Live, now: float) -> str | None:
        """Past the graces of a cancel request: remove the containers, then kill the runner."""
        assert live.cancelled is not None
        if not live.containers_removed and now - live.cancelled > CANCEL_GRACE_SECONDS:
            live.containers_removed = True
            remove_containers(live.task)
        if now - live.cancelled <= RUNNER_GRACE_SECONDS:
            return None
        self._kill(live)
        return f"no result {RUNNER_GRACE_SECONDS} s after a cancel request; runner killed"

    def reap(self) -> list[Finished]:
        self._adopt()
        ended, self._found_dead = self._found_dead, []
        now = time.time()
        for live in list(self._live):
            done, code = live.exit_code(self.forks)
            if not done and live.cancelled is not None:
                killed = self._enforce_cancel(live, now)
                if killed is None:
                    continue
                detail = killed
            elif not done:
                deadline = live.task.timeout_seconds + RUNNER_GRACE_SECONDS
                if now - live.launched <= deadline:
                    continue
                self._kill(live)
                detail = f"no result {RUNNER_GRACE_SECONDS} s past run.timeout; runner killed"
            elif code is None:
                detail = "runner process vanished"
            elif code < 0:
                detail = f"runner process killed by signal {-code}"
            else:
                detail = f"runner process exited with code {code}"
            self._live.remove(live)
            if live.log is not None:
                live.log.close()
            live.record.unlink(missing_ok=True)
            ended.append(Finished(live.task, live.runner, code, detail))
        for finished in ended:
            if finished.exit_code != 0:
                remove_containers(finished.task)
        return ended

    @staticmethod
    def _kill(live: _Live) -> None:
        with contextlib.suppress(OSError):
            os.killpg(live.pid, 9)
        if live.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                live.process.wait(timeout=5)

    def shutdown(self) -> None:
        if self._forks is not None:
            self._forks.close()  # its runners go on
        for live in self._live:
            if live.log is not None:
                live.log.close()
        self._live.clear()


def remove_containers(task: DatasetTask) -> int:
    """Remove the analysis containers a dead runner left behind: nothing is left running."""
    from ..containers import connect, containers_where

    labels = [
        "ncaas=run",
        f"ncaas.analysis={task.record.blueprint.analysis}",
        f"ncaas.group={task.group}",
        f"ncaas.job={task.job}",
        f"ncaas.dataset={task.dataset}",
    ]
    try:
        client: Any = connect()
        found = containers_where(client, {"label": labels})
        for container in found:
            with contextlib.suppress(Exception):
                container.remove(force=True)
        return len(found)
    except NcaasError as e:
        log.error("%s: could not remove leftover containers: %s", task.label, e)
        return 0
