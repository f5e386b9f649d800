"""The launcher interface the dispatcher depends on, and the task it hands over."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel

from ..analysis import AnalysisRecord
from ..errors import NcaasError
from ..status import State


class RetryableLaunchError(NcaasError):
    """A launch that may succeed later (no capacity, a quota, throttling, a role still
    propagating): the dataset stays queued and is retried, for a bounded time."""


class DatasetTask(BaseModel):
    """Everything a runner needs to process one dataset of one job, wherever it runs."""

    bucket: str
    group: str
    job: str
    dataset: str
    data_key: str
    config_key: str | None
    record: AnalysisRecord
    endpoint_url: str | None
    region: str
    # The submission's own choices (None: the blueprint's): its `instance_type`, and the
    # timeout its config's `__duration__` shortened run.timeout to.
    instance_type: str | None = None
    timeout: int | None = None

    @property
    def timeout_seconds(self) -> int:
        return self.timeout or self.record.blueprint.run.timeout

    @property
    def cloud_instance_type(self) -> str:
        return self.instance_type or self.record.blueprint.cloud.instance_type

    @property
    def label(self) -> str:
        return f"{self.bucket}/{self.group}/{self.job}/{self.dataset}"


@dataclass(frozen=True)
class Finished:
    """A runner that ended; ``exit_code`` is the runner's own, not the analysis's. ``state``:
    what its dataset ends as if the runner recorded nothing (None: failed, runner lost), with
    ``detail`` as the reason (the SLURM launcher maps SLURM's end states this way)."""

    task: DatasetTask
    runner: str
    exit_code: int | None
    detail: str
    state: State | None = None


class Launcher(Protocol):
    name: str
    # True when the runner records its own id the moment it starts (the dispatcher then need
    # not write it); False when starting takes long enough that the dispatcher must (EC2).
    runner_announces_itself: bool

    def launch(self, task: DatasetTask) -> str:
        """Start a runner for ``task``; return its id (e.g. ``docker:pid``). Raises on failure."""
        ...

    def active(self, analysis: str) -> int:
        """How many runners of ``analysis`` are live right now."""
        ...

    def reap(self) -> list[Finished]:
        """Runners that ended since the last call."""
        ...

    def cancel(self, task: DatasetTask, runner: str | None) -> None:
        """Stop the work of ``task``'s dataset (a cancel request): its runner is told to stop
        the analysis and upload what it wrote; past a grace the launcher ends it by force.

        ``runner`` is the id status.json last recorded (a hint: it may be ``NAME:starting``
        or None); find the work by the task too. Return at once, without waiting for the
        work to end; raise ``NcaasError`` only if the request to stop could not be made.
        Idempotent: called again (a repeated request, the sweep after a restart) for work
        already stopping or gone, it does nothing harmful. The dataset's ending is recorded
        by its runner, or by ``reap`` when the runner ends without a result.
        """
        ...

    def shutdown(self) -> None:
        """Stop watching; live runners keep going and finish their datasets."""
        ...
