"""How a dataset's container ended, in the contract's words: its final state and a reason a
user can act on (pure; the runner's verdict)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..status import State

if TYPE_CHECKING:
    from ..containers import ExitInfo
    from ..launchers.base import DatasetTask


def _size(n: int) -> str:
    """Bytes as the blueprint would write them, exactly: 1g, 1536m, 1.5 GiB never floors."""
    for unit, factor in (("t", 1024**4), ("g", 1024**3), ("m", 1024**2), ("k", 1024)):
        if n >= factor and n % factor == 0:
            return f"{n // factor}{unit}"
    return f"{n}b" if n < 1024 else f"{n // 1024}k"


def classify(exit: ExitInfo | None, task: DatasetTask) -> tuple[State, str | None]:
    """The dataset's final state and a reason a user can act on (pure)."""
    blueprint = task.record.blueprint
    if exit is None:
        return State.TIMED_OUT, (
            f"killed at the timeout: still running after {task.timeout_seconds} s "
            + (
                "(raise run.timeout in the blueprint or give it a smaller dataset)"
                if task.timeout is None
                else "(the config's __duration__ set it; raise __duration__ up to run.timeout)"
            )
        )
    if exit.oom_killed:
        return State.FAILED, (
            f"out of memory: the analysis used more than its {_size(blueprint.resources.memory)} "
            "limit (raise resources.memory in the blueprint)"
        )
    if exit.exit_code == 0:
        return State.SUCCEEDED, None
    return State.FAILED, (
        f"the analysis exited with code {exit.exit_code}; its log is logs/{task.dataset}.log"
    )
