"""The local launcher: one runner process per dataset, each running one Docker container.

Runners are separate processes (as on EC2, where user-data starts the same runner), so a
crash in one cannot take the dispatcher down, and they start in their own session so they
finish their dataset even if the dispatcher is killed.
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

    def launch(self, task: DatasetTask) -> str:
        folder = self.state_dir / "runners" / task.bucket / task.group / task.job
        folder.mkdir(parents=True, exist_ok=True)
        task_file = folder / f"{task.dataset}.task.json"
        task_file.write_text(task.model_dump_json())
        log = (folder / f"{task.dataset}.runner.log").open("ab")
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "ncaas_dev.runner", str(task_file)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as e:
            log.close()
            raise NcaasError(f"could not start a runner process: {e}") from e
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
        for live in self._live:
            live.log.close()
        self._live.clear()
