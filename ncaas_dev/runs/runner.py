"""The job runner: one dataset, one fresh container, everything streamed back to S3.

The same code runs on the developer's machine (started by the Docker launcher) and on an EC2
instance (started by its user-data): fetch inputs, run the analysis under the container
contract, stream its log, upload its outputs (also after a failure), record the result.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..compat import neurocaas
from ..containers import ContainerSpec, Engine, ImageMissing, Mount, connect
from ..errors import NcaasError
from ..jobstore import JobStore
from ..launchers.base import DatasetTask
from ..layout import JobPaths, dataset_name, is_folder_key
from ..logtext import progress
from ..settings import Settings
from ..status import JobStatus, State, cancel_mark, utcnow
from ..storage import Storage
from .diskguard import DiskGuard, disk_limit, written_reason
from .exits import classify
from .logship import LogShipper, tail_lines
from .stopping import Stopped, arm, install_handlers

log = logging.getLogger(__name__)

# Who the analysis runs as when ncaas-dev runs as root: nobody:nogroup, which every Debian or
# Ubuntu image knows, and which owns nothing on the host.
SANDBOX_UID = SANDBOX_GID = 65534


def sandbox_ids() -> tuple[int, int]:
    """The uid:gid of the analysis: the invoking user's, or an unprivileged one for root."""
    if os.getuid() == 0:
        return SANDBOX_UID, SANDBOX_GID
    return os.getuid(), os.getgid()


def give_back(folder: Path) -> None:
    """Hand the analysis's files to the invoking user (never following its symlinks)."""
    uid, gid = os.getuid(), os.getgid()
    os.chown(folder, uid, gid, follow_symlinks=False)
    for root, dirs, files in os.walk(folder):
        for name in (*dirs, *files):
            os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)


def container_spec(task: DatasetTask, work: Path, network_name: str | None = None) -> ContainerSpec:
    blueprint = task.record.blueprint
    config_name = dataset_name(task.config_key) if task.config_key else ""
    env = {
        "HOME": "/tmp",  # the sandbox user has no home; tools that want one get a writable one
        **blueprint.run.env,
        "NCAAS_DATA": f"/ncaas/input/{task.dataset}",
        "NCAAS_CONFIG": f"/ncaas/config/{config_name}" if config_name else "",
        "NCAAS_OUTPUT": "/ncaas/output",
        "NCAAS_DATASET": task.dataset,
        "NCAAS_JOB": task.job,
        "NCAAS_ANALYSIS": blueprint.analysis,
        "NCAAS_GROUP": task.group,
    }
    mounts = [
        Mount(work / "input", "/ncaas/input", read_only=True),
        Mount(work / "output", "/ncaas/output", read_only=False),
    ]
    if config_name:
        mounts.append(Mount(work / "config", "/ncaas/config", read_only=True))
    return ContainerSpec(
        image=task.record.image,
        command=blueprint.run.command,
        environment=env,
        mounts=mounts,
        cpus=blueprint.resources.cpus,
        memory=blueprint.resources.memory,
        network=blueprint.run.network,
        network_name=network_name,
        gpu=blueprint.resources.gpu,
        labels={
            "ncaas.analysis": blueprint.analysis,
            "ncaas.group": task.group,
            "ncaas.job": task.job,
            "ncaas.dataset": task.dataset,
        },
        # Never root: the invoking user, or nobody when that is root (outputs are given back).
        user="{}:{}".format(*sandbox_ids()),
    )


class Runner:
    def __init__(self, storage: Storage, engine: Engine, settings: Settings) -> None:
        self.storage = storage
        self.engine = engine
        self.settings = settings

    def run(self, task: DatasetTask, runner_id: str) -> State:
        store = JobStore(self.storage, task.bucket)
        paths = JobPaths(task.group, task.job)
        work = self.settings.jobs_dir / task.bucket / task.group / task.job / task.dataset
        shutil.rmtree(work, ignore_errors=True)
        for sub in ("input", "config", "output"):
            (work / sub).mkdir(parents=True, exist_ok=True)

        def started(status: JobStatus) -> None:
            ds = status.datasets[task.dataset]
            if ds.state.terminal:  # decided already (e.g. its instance taken for lost)
                return
            ds.state, ds.started, ds.runner, ds.reason = State.RUNNING, utcnow(), runner_id, None
            status.log(f"{task.dataset}: started on {runner_id}; fetching inputs")

        seen = store.update(task.group, task.job, started)
        current = seen.datasets[task.dataset]
        if current.state.terminal:
            log.warning("%s: already %s; not running it", task.label, current.state.value)
            return current.state
        compat = neurocaas.is_compat(seen)
        live: list[Any] = []  # the container, once it runs (sampled for NeuroCAAS's usage)
        shipper = LogShipper(
            self.storage,
            task.bucket,
            paths.log(task.dataset),
            work / "run.log",
            on_last_line=lambda line: self._last_output(store, task, line, work, compat, live),
        )
        container: Any = None
        output: list[Any] = []  # attached before the start: every byte, as it is written
        guard: DiskGuard | None = None
        state, exit_code = State.FAILED, None
        reason: str | None = "infrastructure error: the runner stopped early"
        extra: dict[str, Any] = {}
        stopped_by: str | None = None
        announce: threading.Thread | None = None
        try:
            arm(True)
            self._download_data(task, work / "input" / task.dataset)
            if task.config_key:
                self.storage.download_file(
                    task.bucket, task.config_key, work / "config" / dataset_name(task.config_key)
                )
            uid, gid = sandbox_ids()
            os.chown(work / "output", uid, gid)  # the sandbox user may write here, nowhere else
            limit = disk_limit(task.record.blueprint, runner_id)
            container = self.engine.start(
                replace(container_spec(task, work, self.settings.analysis_network), disk=limit),
                on_created=lambda c: output.append(Engine.attach_output(c)),
            )
            guard = DiskGuard(self.engine, container, work / "output", limit).start()
            extra["image_id"] = container.image.id
            live.append(container)
            # Recorded beside the run, not before it: a short analysis has ended by the time
            # this write returns. Joined before the result is recorded.
            announce = threading.Thread(
                target=self._announce,
                args=(store, task, f"docker:{container.short_id}"),
                daemon=True,
            )
            announce.start()
            shipper.start()
            reader = threading.Thread(target=shipper.consume, args=(output[0],), daemon=True)
            reader.start()
            exit = Engine.wait(container, timeout=task.timeout_seconds)
            if exit is None:
                Engine.kill(container)
            reader.join(timeout=10)
            state, reason = classify(exit, task)
            exit_code = exit.exit_code if exit else None
            if guard.stop(failed=state is not State.SUCCEEDED):
                state, reason = State.FAILED, written_reason(guard.limit)
        except Stopped as e:
            state, reason = (
                State.TIMED_OUT,
                (
                    "stopped ahead of SLURM's time limit: fetching, running and uploading took "
                    "longer than allowed (raise run.timeout or give it a smaller dataset)"
                ),
            )
            if e.signum != signal.SIGUSR1:  # how it ended is SLURM's to say (the launcher's)
                stopped_by = str(e)
        except ImageMissing as e:
            reason = f"image missing: {e}"
        except NcaasError as e:
            reason = f"infrastructure error: {e}"
        except Exception as e:  # the record must still say what happened
            log.exception("runner crashed")
            reason = f"infrastructure error: the runner crashed ({type(e).__name__}: {e})"
        finally:
            arm(False)
            if guard is not None:
                guard.halt()
            shipper.stop()
            extra["last_output"] = shipper.last_line
            if compat:
                extra["std"] = tail_lines(work / "run.log", neurocaas.STD_LINES)
            if container is not None:
                Engine.remove(container)  # nothing of the analysis runs on past this point
            for stream in output:  # the attach connection, read to its end or abandoned
                Engine.close_output(stream)
            uploaded = self._upload_outputs(task, work, paths)
            if announce is not None:
                announce.join(timeout=60)
            if stopped_by:  # stopped from outside: a cancel request, or the launcher says
                self._stopped(store, task, stopped_by, uploaded)
            else:
                self._finish(store, task, state, reason, exit_code, uploaded, extra)
            shutil.rmtree(work, ignore_errors=True)
        return state

    def _download_data(self, task: DatasetTask, target: Path) -> None:
        """The dataset: one object, or (a key ending in /) every object under the folder,
        sub-paths kept, into a folder of its name."""
        if not is_folder_key(task.data_key):
            self.storage.download_file(task.bucket, task.data_key, target)
            return
        target.mkdir(parents=True, exist_ok=True)
        self.storage.download_tree(task.bucket, task.data_key, target)

    def _upload_outputs(self, task: DatasetTask, work: Path, paths: JobPaths) -> int:
        try:
            give_back(work / "output")
            return self.storage.upload_tree(
                work / "output", task.bucket, paths.outputs(task.dataset)
            )
        except Exception as e:  # whatever the analysis left there, the result gets recorded
            log.error("%s: uploading outputs failed: %s", task.label, e)
            return -1

    @classmethod
    def _announce(cls, store: JobStore, task: DatasetTask, runner: str) -> None:
        try:
            store.update(
                task.group, task.job, lambda s: cls._container_started(s, task.dataset, runner)
            )
        except NcaasError as e:  # the result, recorded next, says how it ended anyway
            log.warning("%s: could not record the container's start: %s", task.label, e)

    @staticmethod
    def _container_started(status: JobStatus, dataset: str, runner: str) -> None:
        ds = status.datasets[dataset]
        # On EC2 (SLURM, Batch) the instance (job) is what the dispatcher watches; the
        # container is a detail of it.
        if not (ds.runner or "").startswith(("ec2:", "slurm:", "batch:")):
            ds.runner = runner
        status.log(f"{dataset}: analysis started on {runner}")

    @staticmethod
    def _last_output(
        store: JobStore,
        task: DatasetTask,
        line: str,
        work: Path,
        compat: bool = False,
        live: list[Any] | None = None,
    ) -> None:
        # NeuroCAAS's status file shows the last lines (`std`), not only the last one, and
        # what the analysis uses (peak memory bytes seen, CPU seconds so far).
        recent = tail_lines(work / "run.log", neurocaas.STD_LINES) if compat else None
        usage = Engine.usage(live[0]) if compat and live else None

        def note(status: JobStatus) -> None:
            ds = status.datasets[task.dataset]
            ds.last_output, ds.progress = line[:500], progress(line)
            if recent is not None:
                ds.std = recent  # type: ignore[attr-defined]
            if usage is not None:
                peak = (ds.model_extra or {}).get("memory_usage") or 0
                ds.memory_usage = max(int(peak), int(usage["memory_usage"]))  # type: ignore[attr-defined]
                ds.cpu_usage = usage["cpu_usage"]  # type: ignore[attr-defined]

        store.update(task.group, task.job, note)

    @staticmethod
    def _stopped(store: JobStore, task: DatasetTask, by: str, uploaded: int) -> None:
        """After a signal from outside: ``cancelled`` if a cancel request marked the dataset;
        otherwise its launcher records how it ended (SLURM's state, a lost instance)."""

        def stopped(status: JobStatus) -> None:
            ds = status.datasets[task.dataset]
            status.log(f"{task.dataset}: runner stopped by {by}; {uploaded} output file(s)")
            mark = cancel_mark(ds)
            if mark and not ds.state.terminal:
                ds.state, ds.reason, ds.finished = State.CANCELLED, mark, utcnow()

        store.update(task.group, task.job, stopped)

    @staticmethod
    def _finish(
        store: JobStore,
        task: DatasetTask,
        state: State,
        reason: str | None,
        exit_code: int | None,
        uploaded: int,
        extra: dict[str, Any],
    ) -> None:
        def finish(status: JobStatus) -> None:
            ds = status.datasets[task.dataset]
            if ds.state.terminal:  # a runner never overwrites a decided state
                status.log(f"{task.dataset}: runner ended ({state.value}) after it was decided")
                return
            ds.state, ds.reason, ds.exit_code, ds.finished = state, reason, exit_code, utcnow()
            mark = cancel_mark(ds)
            if mark and state != State.SUCCEEDED:  # stopped by a cancel request
                ds.state, ds.reason = State.CANCELLED, mark
            if extra.get("last_output"):
                ds.last_output = str(extra["last_output"])[:500]
                ds.progress = progress(ds.last_output)
            if neurocaas.is_compat(status) and "std" in extra:
                ds.std = extra["std"]  # type: ignore[attr-defined]
            if "image_id" in extra:
                status.provenance.setdefault("image_id", extra["image_id"])
            outcome = state.value + (f" ({reason})" if reason else "")
            files = "upload of outputs failed" if uploaded < 0 else f"{uploaded} output file(s)"
            status.log(f"{task.dataset}: {outcome}; {files}")

        store.update(task.group, task.job, finish)


@dataclass
class _Clients:
    storage: Storage
    engine: Engine | None
    endpoint_url: str | None


def make_clients(endpoint_url: str | None) -> _Clients:
    from ..aws import s3_client

    settings = Settings.from_env(endpoint_url=endpoint_url, cloud=endpoint_url is None)
    storage = Storage(s3_client(settings), settings.endpoint_url)
    try:
        engine: Engine | None = Engine(connect())
    except NcaasError:
        engine = None  # reported against the task once there is one
    return _Clients(storage, engine, settings.endpoint_url)


def main(argv: list[str] | None = None) -> int:
    """``python -m ncaas_dev.runner TASK.json [RUNNER_ID]``."""
    args = sys.argv[1:] if argv is None else argv
    return run_task(Path(args[0]), None, args[1] if len(args) > 1 else None)


def run_task(task_file: Path, ready: _Clients | None, runner_id: str | None = None) -> int:
    """Run the task; ``ready``: clients made in advance (the fork server's children)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s runner %(message)s")
    install_handlers()
    task = DatasetTask.model_validate_json(task_file.read_text())
    clients = ready if ready and ready.endpoint_url == task.endpoint_url else None
    clients = clients or make_clients(task.endpoint_url)
    settings = Settings.from_env(endpoint_url=task.endpoint_url, cloud=task.endpoint_url is None)
    runner_id = runner_id or f"docker:pid{os.getpid()}"
    started = time.monotonic()
    engine = clients.engine
    if engine is None:
        try:
            engine = Engine(connect())
        except NcaasError as e:
            store = JobStore(clients.storage, task.bucket)
            Runner._finish(store, task, State.FAILED, f"infrastructure error: {e}", None, 0, {})
            return 1
    state = Runner(clients.storage, engine, settings).run(task, runner_id)
    log.info("%s: %s in %.1f s", task.label, state.value, time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
