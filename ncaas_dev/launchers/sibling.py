"""The Docker launcher of a dispatcher that itself runs in a container (the compose stack).

A runner started as a child process would live in the dispatcher's container and die with it
(``docker kill``, a crash, a restart), taking its dataset down. So here each runner is a
container of its own beside the dispatcher's, on the same engine, made like the dispatcher's:
its image, network, user, groups, bind mounts and environment. The runner therefore reaches
LocalStack by service name, bind-mounts job folders at the host's paths (the state folder has
the same path in every container of the stack and on the host), and runs the analysis under the
same sandbox as ``ncaas-dev up``. Runners are found by label, not remembered: a restarted
dispatcher counts the ones still going against the concurrency cap and reaps the ones that
ended while none watched, with their real exit code.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..containers import connect, containers_where
from ..errors import NcaasError, ServiceUnavailable
from .base import DatasetTask, Finished
from .docker import CANCEL_GRACE_SECONDS, RUNNER_GRACE_SECONDS, remove_containers

log = logging.getLogger(__name__)
# Set in docker-compose.yml for the dispatcher: start runners as sibling containers.
RUNNERS_ENV = "NCAAS_RUNNERS"
RUNNER = "ncaas=runner"
# Runners belong to the stack of one state folder: another stack on the same engine (a test
# session's, a developer's) neither counts nor reaps them.
SCOPE = "ncaas.runner.state"
ANALYSIS = "ncaas.runner.analysis"  # not ncaas.analysis: that one marks analysis containers
TASK = "ncaas.runner.task"
LAUNCHED = "ncaas.runner.launched"


def runner_filters(state_dir: Path, analysis: str | None = None) -> dict[str, list[str]]:
    labels = [RUNNER, f"{SCOPE}={state_dir}"]
    if analysis is not None:
        labels.append(f"{ANALYSIS}={analysis}")
    return {"label": labels}


def container_template(me: Any) -> dict[str, Any]:
    """What a runner container copies from the dispatcher's (``docker inspect`` of it)."""
    attrs = me.attrs
    host, config = attrs["HostConfig"], attrs["Config"]
    return {
        "image": attrs["Image"],
        "user": config.get("User") or None,
        "environment": list(config.get("Env") or []),
        "volumes": list(host.get("Binds") or []),
        "group_add": list(host.get("GroupAdd") or []) or None,
        "network": next(iter(attrs["NetworkSettings"]["Networks"]), None),
    }


@dataclass
class SiblingLauncher:
    state_dir: Path
    client: Any
    template: dict[str, Any]
    name: str = "docker"
    runner_announces_itself: bool = True
    _seen_dead: set[str] = field(default_factory=set)
    _cancelled: dict[str, tuple[float, DatasetTask]] = field(default_factory=dict)  # by id

    @classmethod
    def beside_this_container(cls, state_dir: Path) -> SiblingLauncher:
        client = connect()
        try:  # a container's host name is its short id unless set otherwise
            me = client.containers.get(socket.gethostname())
        except Exception as e:
            raise ServiceUnavailable(
                f"{RUNNERS_ENV}=containers, but this is no container the engine knows ({e})",
                hint=f"unset {RUNNERS_ENV} outside the compose stack",
            ) from e
        return cls(state_dir, client, container_template(me))

    @property
    def runners_dir(self) -> Path:
        return self.state_dir / "runners"

    def _runners(self, analysis: str | None = None) -> list[Any]:
        return containers_where(self.client, runner_filters(self.state_dir, analysis))

    def launch(self, task: DatasetTask) -> str:
        folder = self.runners_dir / task.bucket / task.group / task.job
        folder.mkdir(parents=True, exist_ok=True)
        task_file = folder / f"{task.dataset}.task.json"
        task_file.write_text(task.model_dump_json())
        labels = {
            "ncaas": "runner",
            SCOPE: str(self.state_dir),
            ANALYSIS: task.bucket,
            TASK: str(task_file),
            LAUNCHED: str(time.time()),
        }
        try:
            container = self.client.containers.run(
                command=["python", "-m", "ncaas_dev.runner", str(task_file)],
                detach=True,
                labels=labels,
                **{k: v for k, v in self.template.items() if v is not None},
            )
        except Exception as e:  # the engine refused: the scheduler records why
            # A container created but not started would count against the cap until reaped.
            with contextlib.suppress(Exception):
                for left in containers_where(self.client, {"label": f"{TASK}={task_file}"}):
                    left.remove(force=True)
            raise NcaasError(f"could not start a runner container: {e}") from e
        return f"docker:runner-{container.short_id}"

    def active(self, analysis: str) -> int:
        """Runners of ``analysis`` not reaped yet (an ended one counts until the next reap)."""
        return len(self._runners(analysis))

    def cancel(self, task: DatasetTask, runner: str | None) -> None:
        """SIGTERM the dataset's runner container (its runner stops the analysis and uploads
        the partial outputs); past a grace ``reap`` removes the analysis containers."""
        task_file = self.runners_dir / task.bucket / task.group / task.job
        label = f"{TASK}={task_file / f'{task.dataset}.task.json'}"
        try:
            found = containers_where(self.client, {"label": [RUNNER, label]}, stopped=False)
        except Exception as e:
            raise NcaasError(f"could not list the runner of {task.label}: {e}") from e
        for container in found:
            if container.id not in self._cancelled:
                self._cancelled[container.id] = (time.time(), task)
                with contextlib.suppress(Exception):
                    container.kill(signal="SIGTERM")
        if not found:
            remove_containers(task)

    def _enforce_cancels(self) -> None:
        for key, (since, task) in list(self._cancelled.items()):
            if time.time() - since > CANCEL_GRACE_SECONDS:
                del self._cancelled[key]
                remove_containers(task)

    def reap(self) -> list[Finished]:
        self._enforce_cancels()
        ended: list[Finished] = []
        for container in self._runners():
            finished = self._ended(container)
            if finished is None:
                continue
            self._keep_log(container, finished.task)
            with contextlib.suppress(Exception):
                container.remove(force=True)
            if finished.exit_code != 0:
                remove_containers(finished.task)
            ended.append(finished)
        return ended

    def _ended(self, container: Any) -> Finished | None:
        labels = container.labels
        try:
            task = DatasetTask.model_validate_json(Path(labels[TASK]).read_text())
        except (OSError, ValueError, KeyError) as e:
            if container.id not in self._seen_dead:
                self._seen_dead.add(container.id)
                log.warning("runner container %s has no readable task: %s", container.short_id, e)
            return None
        runner = f"docker:runner-{container.short_id}"
        state = container.attrs["State"]
        if state["Status"] in ("exited", "dead"):
            code = int(state["ExitCode"])
            return Finished(task, runner, code, f"runner container exited with code {code}")
        launched = float(labels.get(LAUNCHED, time.time()))
        if time.time() - launched <= task.record.blueprint.run.timeout + RUNNER_GRACE_SECONDS:
            return None
        with contextlib.suppress(Exception):
            container.kill()
        detail = f"no result {RUNNER_GRACE_SECONDS} s past run.timeout; runner killed"
        return Finished(task, runner, None, detail)

    @staticmethod
    def _keep_log(container: Any, task: DatasetTask) -> None:
        """The runner's own output, where a host runner's goes (``{dataset}.runner.log``)."""
        with contextlib.suppress(Exception):
            path = Path(container.labels[TASK]).with_suffix(".runner.log")
            path.write_bytes(container.logs())

    def shutdown(self) -> None:
        """Nothing to do: runners are containers of their own and finish their datasets."""


def stop_runners(state_dir: Path) -> int:
    """Remove the runner containers of the stack of ``state_dir`` and their analysis
    containers (``ncaas-dev down``): nothing of the stack keeps running."""
    client: Any = connect()
    found = containers_where(client, runner_filters(state_dir))
    for container in found:
        with contextlib.suppress(Exception):
            container.remove(force=True)
        with contextlib.suppress(OSError, ValueError, KeyError):
            task = DatasetTask.model_validate_json(Path(container.labels[TASK]).read_text())
            remove_containers(task)
    return len(found)


def wants_sibling_runners() -> bool:
    return os.environ.get(RUNNERS_ENV) == "containers"
