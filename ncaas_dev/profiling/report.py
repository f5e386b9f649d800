"""What ``profile`` returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


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
