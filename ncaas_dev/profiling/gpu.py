"""GPU memory of a container's processes, sampled with ``nvidia-smi`` where there is one.

``nvidia-smi --query-compute-apps`` lists each process using a GPU with its memory; those
whose pid is in the container's cgroup (``cgroup.procs``, host pids) are the analysis's.
Without ``nvidia-smi`` (no NVIDIA driver here) nothing is sampled and the peak stays None.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

QUERY = ["--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"]


def parse_compute_apps(text: str, pids: set[int]) -> int:
    """Bytes of GPU memory used by ``pids`` in nvidia-smi's CSV (MiB per line) (pure)."""
    total = 0
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        numbers = len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit()
        if numbers and int(parts[0]) in pids:
            total += int(parts[1]) * 1024**2
    return total


def _pids(cgroup: Path) -> set[int]:
    try:
        return {int(p) for p in (cgroup / "cgroup.procs").read_text().split()}
    except (OSError, ValueError):
        return set()


class GpuSampler:
    """Samples every ``interval`` seconds until ``stop()``; ``peak`` is None without a GPU."""

    def __init__(self, cgroup: Path | None, interval: float = 0.5) -> None:
        self.binary = shutil.which("nvidia-smi")
        self.cgroup = cgroup
        self.interval = interval
        self.peak: int | None = 0 if self.binary and cgroup else None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def sample(self) -> None:
        if self.peak is None or self.binary is None or self.cgroup is None:
            return
        try:
            done = subprocess.run(
                [self.binary, *QUERY], capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return
        self.peak = max(self.peak, parse_compute_apps(done.stdout, _pids(self.cgroup)))

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def start(self) -> GpuSampler:
        if self.peak is not None:
            self._thread.start()
        return self

    def stop(self) -> int | None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)
        return self.peak
