"""``profile``: run the analysis once under the container contract, measure it, and recommend
the cheapest instance type that fits (step 2 of the developer's guide: choosing hardware)."""

from __future__ import annotations

import os
from pathlib import Path

from ..profiling.report import ProfileReport
from .progress import OnProgress
from .project import BlueprintLike

DEFAULT_HEADROOM = 1.5
__all__ = ["DEFAULT_HEADROOM", "ProfileReport", "profile"]


def profile(
    bp: BlueprintLike,
    data: str | os.PathLike[str],
    config: str | os.PathLike[str] | None = None,
    *,
    headroom: float = DEFAULT_HEADROOM,
    write: bool = False,
    on_progress: OnProgress | None = None,
) -> ProfileReport:
    """Run the analysis once on ``data`` (a local file) under the
    container contract with generous limits, sampling its cgroup for peak memory and CPU time.
    Recommends the cheapest instance type in the price table with memory >= peak x
    ``headroom`` and enough vCPUs. With ``write``, puts ``resources.cpus``,
    ``resources.memory`` and ``cloud.instance_type`` into blueprint.yaml, keeping comments."""
    from ..profiling.run import profile_run

    return profile_run(
        bp, Path(data), Path(config) if config else None, headroom, write, on_progress
    )
