"""Sampling a running container's cgroup: peak memory and CPU time.

The engine's containers live in cgroups under /sys/fs/cgroup, found through
``/proc/{pid}/cgroup`` of the container's first process. Both layouts are read:
- cgroup v1 (this project's engine: cgroupfs driver): ``memory/…/memory.max_usage_in_bytes``
  (the high-water mark) and ``cpuacct/…/cpuacct.usage`` (nanoseconds);
- cgroup v2: ``…/memory.peak`` (kernel 5.19+; else the largest ``memory.current`` sampled) and
  ``…/cpu.stat`` ``usage_usec``.
The cgroup disappears with the container, so the sampler reads it every ``interval`` seconds
while it runs and keeps the last values (the peak is a high-water mark, CPU time only grows).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass
class Usage:
    peak_memory_bytes: int = 0
    cpu_seconds: float = 0.0
    samples: int = 0
    source: str = ""


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def cgroup_paths(pid: int, root: Path = CGROUP_ROOT) -> tuple[Path | None, Path | None, str]:
    """(memory folder, cpu folder, "v1"|"v2") of process ``pid``."""
    try:
        return parse_cgroup(Path(f"/proc/{pid}/cgroup").read_text(), root)
    except OSError:
        return None, None, ""


def parse_cgroup(text: str, root: Path = CGROUP_ROOT) -> tuple[Path | None, Path | None, str]:
    """The folders ``/proc/{pid}/cgroup``'s ``text`` names (pure)."""
    memory = cpu = None
    version = ""
    lines = text.splitlines()
    for line in lines:
        _, controllers, path = line.split(":", 2)
        names = controllers.split(",")
        if "memory" in names:
            memory, version = root / "memory" / path.lstrip("/"), "v1"
        if "cpuacct" in names:
            cpu = root / controllers / path.lstrip("/")
    if memory is None:
        for line in lines:
            if line.startswith("0::"):
                unified = root / line[3:].lstrip("/")
                return unified, unified, "v2"
    return memory, cpu, version


class CgroupSampler:
    """Samples process ``pid``'s cgroup in a thread until ``stop()``."""

    def __init__(
        self,
        pid: int,
        interval: float = 0.05,
        root: Path = CGROUP_ROOT,
        paths: tuple[Path | None, Path | None, str] | None = None,
    ) -> None:
        self.memory, self.cpu, self.version = paths or cgroup_paths(pid, root)
        self.usage = Usage(source=f"cgroup {self.version}: {self.memory}")
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def sample(self) -> None:
        usage = self.usage
        if self.memory is None:
            return
        if self.version == "v1":
            peak = _read_int(self.memory / "memory.max_usage_in_bytes")
            cpu_ns = _read_int(self.cpu / "cpuacct.usage") if self.cpu else None
            cpu = cpu_ns / 1e9 if cpu_ns is not None else None
        else:
            peak = _read_int(self.memory / "memory.peak")
            if peak is None:
                peak = _read_int(self.memory / "memory.current")
            cpu = _cpu_stat_seconds(self.memory / "cpu.stat")
        if peak is not None:
            usage.peak_memory_bytes = max(usage.peak_memory_bytes, peak)
        if cpu is not None:
            usage.cpu_seconds = max(usage.cpu_seconds, cpu)
        usage.samples += 1

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def start(self) -> CgroupSampler:
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> Usage:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.usage


def _cpu_stat_seconds(path: Path) -> float | None:
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) / 1e6
    except (OSError, ValueError):
        return None
    return None
