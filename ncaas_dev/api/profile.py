"""``profile``: run the analysis once under the container contract, measure it, and recommend
the cheapest instance type that fits (step 2 of the developer's guide: choosing hardware)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .progress import OnProgress
from .project import BlueprintLike

DEFAULT_HEADROOM = 1.5


@dataclass(frozen=True)
class ProfileReport:
    """What one profiled run measured and what it recommends.

    ``succeeded`` False: the run failed (``reason`` says how) and nothing is recommended
    (``recommended_instance_type`` and the costs are None)."""

    succeeded: bool
    reason: str | None
    exit_code: int | None
    peak_memory_bytes: int
    cpu_seconds: float
    wall_seconds: float
    output_bytes: int
    headroom: float
    cpus_needed: int = 0
    memory_needed_bytes: int = 0
    gpu_memory_bytes: int | None = None
    recommended_instance_type: str | None = None
    recommended_vcpus: int | None = None
    recommended_memory_bytes: int | None = None
    price_per_hour_usd: float | None = None
    cost_per_dataset_usd: float | None = None
    cost_per_100_datasets_usd: float | None = None
    reasoning: list[str] = field(default_factory=list)
    written: str | None = None  # the blueprint.yaml that ``write=True`` updated

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


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
