"""The local launcher: one runner process per dataset, each running one Docker container.

Runners are separate processes (as on EC2, where user-data starts the same runner), so a
crash in one cannot take the dispatcher down, and they start in their own session so they
finish their dataset even if the dispatcher is killed. One spare runner waits with its
imports done, which takes Python's start-up (about 0.4 s) off each job's critical path.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..errors import NcaasError
from .base import DatasetTask, Finished


@dataclass
class _Live:
    task: DatasetTask
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    runner: str


class DockerLauncher:
    name = "docker"

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._live: list[_Live] = []
        self._spare: subprocess.Popen[bytes] | None = None

    def _spawn(self, argument: str, log: IO[bytes] | int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "ncaas_dev.runner", argument],
            stdin=subprocess.PIPE if argument == "-" else subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _take_spare(self, task_file: Path) -> subprocess.Popen[bytes] | None:
        spare, self._spare = self._spare, None
        if spare is None or spare.poll() is not None or spare.stdin is None:
            return None
        try:
            spare.stdin.write(f"{task_file}\n".encode())
            spare.stdin.close()
        except OSError:
            return None
        return spare

    def warm(self) -> None:
        """Have a spare runner ready before the first launch."""
        if self._spare is None:
            self._refill_spare()

    def _refill_spare(self) -> None:
        try:
            self._spare = self._spawn("-", subprocess.DEVNULL)
        except OSError:
            self._spare = None  # launching cold still works

    def launch(self, task: DatasetTask) -> str:
        folder = self.state_dir / "runners" / task.bucket / task.group / task.job
        folder.mkdir(parents=True, exist_ok=True)
        task_file = folder / f"{task.dataset}.task.json"
        task_file.write_text(task.model_dump_json())
        log = task_file.with_suffix(".runner.log").open("ab")
        process = self._take_spare(task_file)
        try:
            process = process or self._spawn(str(task_file), log)
        except OSError as e:
            log.close()
            raise NcaasError(f"could not start a runner process: {e}") from e
        self._refill_spare()
        runner = f"docker:pid{process.pid}"
        self._live.append(_Live(task, process, log, runner))
        return runner

    def active(self, analysis: str) -> int:
        return sum(1 for live in self._live if live.task.bucket == analysis)

    def reap(self) -> list[Finished]:
        ended: list[Finished] = []
        for live in list(self._live):
            code = live.process.poll()
            if code is None:
                continue
            self._live.remove(live)
            live.log.close()
            detail = f"runner process exited with code {code}"
            ended.append(Finished(live.task, live.runner, code, detail))
        return ended

    def shutdown(self) -> None:
        if self._spare is not None and self._spare.stdin is not None:
            self._spare.stdin.close()  # an unused spare exits on end of input
        for live in self._live:
            live.log.close()
        self._live.clear()
