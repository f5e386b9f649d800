"""resources.disk: what one dataset may write (its outputs and its scratch), enforced.

This engine's storage driver is overlay2 on ext4, where Docker cannot size a container's
writable layer (``--storage-opt size`` needs overlay2 on xfs with project quotas), and a
size-limited filesystem per dataset (a loop-mounted image, a tmpfs) needs root or costs memory.
So two layers instead (docs/design.md, "Disk"):

- the container's RLIMIT_FSIZE is the limit: no single file grows past it, whatever the
  write rate (the kernel refuses the write: EFBIG, or SIGXFSZ for programs that do not
  ignore it);
- a watchdog thread adds up the output folder (blocks allocated) and the container's writable
  layer (Docker's SizeRw) every half second, and kills the container once the sum passes the
  limit. What was written until then stays and is uploaded, like any failed run's outputs.

The overshoot is bounded by what the analysis writes in one interval across several files.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..blueprint import Blueprint
    from ..containers import Engine

GIB = 1024**3
LOCAL_DISK = 20 * GIB  # resources.disk's default on this machine
INTERVAL_S = 0.5
LAYER_EVERY = 4  # SizeRw walks the layer in the engine: every 4th round (2 s)


def disk_limit(blueprint: Blueprint, runner_id: str = "") -> int:
    """resources.disk, else 20g here and the instance's volume on EC2."""
    if blueprint.resources.disk is not None:
        return blueprint.resources.disk
    return blueprint.cloud.volume_gb * GIB if runner_id.startswith("ec2:") else LOCAL_DISK


def written_reason(limit: int) -> str:
    return (
        f"wrote more than {limit / GIB:g} GiB (resources.disk) in its output folder and "
        "scratch, so it was stopped; what it wrote until then is kept in its process_results "
        "(raise resources.disk in the blueprint, or write less)"
    )


def folder_bytes(folder: Path) -> int:
    """Disk blocks in use under ``folder`` (what it costs the host, sparse files included)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                continue  # removed meanwhile
    return total


class DiskGuard:
    """Kills ``container`` once its output folder plus writable layer pass ``limit`` bytes."""

    def __init__(self, engine: Engine, container: Any, output: Path, limit: int) -> None:
        self.engine = engine
        self.container = container
        self.output = output
        self.limit = limit
        self.exceeded = False
        self._layer = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="disk-guard")

    def start(self) -> DiskGuard:
        self._thread.start()
        return self

    def used(self, layer: bool = True) -> int:
        if layer:
            self._layer = self.engine.written(self.container)
        return folder_bytes(self.output) + self._layer

    def _watch(self) -> None:
        rounds = 0
        while not self._stop.wait(INTERVAL_S):
            if self.used(layer=rounds % LAYER_EVERY == 0) > self.limit:
                self.exceeded = True
                self.engine.kill(self.container)
                return
            rounds += 1

    def halt(self) -> None:
        self._stop.set()

    def stop(self, failed: bool = True) -> bool:
        """Stop watching; whether the dataset wrote past its limit (looked at once more at its
        end). A failed analysis that reached the limit counts too: RLIMIT_FSIZE stopped a
        file there, and the analysis then failed on EFBIG."""
        self._stop.set()
        self._thread.join(timeout=10)
        used = self.used()
        self.exceeded = self.exceeded or used > self.limit or (failed and used >= self.limit)
        return self.exceeded
