"""Choosing hardware from a measurement (pure): the cheapest instance type that fits.

The types and their prices come from the package's price table (``prices.json``, via
``pricing``); their vCPUs, memory and GPUs from ``instance_types.json`` beside it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ..blueprint import NVIDIA_GPU_TYPE, RETIRED_GPU_TYPE
from ..pricing import price_table, run_cost

SPEC_TABLE = Path(__file__).resolve().parent.parent / "instance_types.json"
GIB = 1024**3
MIB = 1024**2


@dataclass(frozen=True)
class InstanceType:
    name: str
    vcpus: int
    memory_bytes: int
    price_per_hour: float
    gpus: int = 0
    gpu_memory_bytes: int = 0
    burstable: bool = False


@cache
def instance_types() -> tuple[InstanceType, ...]:
    """Every type with both a price and a specification."""
    specs = json.loads(SPEC_TABLE.read_text())["types"]
    prices = price_table()
    return tuple(
        InstanceType(
            name=name,
            vcpus=int(spec["vcpus"]),
            memory_bytes=int(float(spec["memory_gib"]) * GIB),
            price_per_hour=prices[name],
            gpus=int(spec.get("gpus", 0)),
            gpu_memory_bytes=int(float(spec.get("gpu_memory_gib", 0)) * GIB),
            burstable=bool(spec.get("burstable", False)),
        )
        for name, spec in sorted(specs.items())
        if name in prices
    )


@dataclass(frozen=True)
class Need:
    """What a run needs, headroom included."""

    cpus: int
    memory_bytes: int
    gpu: bool
    gpu_memory_bytes: int = 0


def need_of(
    peak_memory: int,
    cpu_seconds: float,
    wall_seconds: float,
    headroom: float,
    gpu: bool = False,
    gpu_memory: int = 0,
) -> Need:
    """Memory: peak x headroom, rounded up to a MiB. CPUs: the cores the run kept busy on
    average (CPU time / wall time) x headroom, rounded up, at least one."""
    busy = cpu_seconds / wall_seconds if wall_seconds > 0 else 1.0
    return Need(
        cpus=max(1, math.ceil(busy * headroom - 1e-9)),
        memory_bytes=math.ceil(peak_memory * headroom / MIB) * MIB,
        gpu=gpu,
        gpu_memory_bytes=math.ceil(gpu_memory * headroom),
    )


def fits(kind: InstanceType, need: Need) -> bool:
    if kind.burstable:  # CPU throttled to a baseline under sustained load: not for batch runs
        return False
    nvidia = NVIDIA_GPU_TYPE.match(kind.name) and not RETIRED_GPU_TYPE.match(kind.name)
    if need.gpu and not nvidia:
        return False
    return (
        kind.vcpus >= need.cpus
        and kind.memory_bytes >= need.memory_bytes
        and kind.gpu_memory_bytes >= need.gpu_memory_bytes
    )


def cheapest(need: Need, types: tuple[InstanceType, ...] | None = None) -> InstanceType | None:
    """The cheapest type that fits (ties: fewer vCPUs, then less memory, then the name)."""
    candidates = [k for k in (types or instance_types()) if fits(k, need)]
    if not candidates:
        return None
    return min(candidates, key=lambda k: (k.price_per_hour, k.vcpus, k.memory_bytes, k.name))


def cost_per_dataset(kind: InstanceType, wall_seconds: float) -> float:
    """What one dataset costs on ``kind`` (EC2's per-second billing, one-minute minimum)."""
    return run_cost(kind.price_per_hour, wall_seconds)


def size_text(n: int) -> str:
    """Bytes in the blueprint's units, rounded up to a MiB: 471859200 -> '450m'."""
    mib = math.ceil(n / MIB)
    return f"{mib // 1024}g" if mib % 1024 == 0 else f"{mib}m"
