"""One measured run: the analysis under the container contract with generous limits, its
cgroup sampled for peak memory and CPU time, then the cheapest instance type that fits."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..containers import Engine, connect
from ..runs.runner import give_back
from ..settings import Settings
from .cgroup import CgroupSampler
from .contract import check_files, lay_out, remove_labelled
from .gpu import GpuSampler
from .recommend import cheapest, cost_per_dataset, need_of, size_text
from .report import ProfileReport

if TYPE_CHECKING:
    from ..api.progress import OnProgress
    from ..api.project import BlueprintLike

# The profiled run may use most of the machine: a limit near the blueprint's would hide what
# the analysis really needs (it would be killed, or squeezed into swapless reclaim).
GENEROUS_MEMORY_SHARE = 0.75


def _host_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def profile_run(
    bp: BlueprintLike,
    data: Path,
    config: Path | None,
    headroom: float,
    write: bool,
    on_progress: OnProgress | None,
) -> ProfileReport:
    from ..api.progress import emit
    from ..api.project import cached_build, loaded
    from ..errors import UsageError

    if headroom < 1:
        raise UsageError(f"headroom {headroom} is below 1", hint="use 1.5 (the default) or more")
    item = loaded(bp)
    check_files(data, config)
    settings = Settings.from_env()
    image_id = cached_build(item, settings.state_dir, on_progress)
    limits = item.blueprint.resources
    cpus = float(os.cpu_count() or 1)
    memory = max(limits.memory, int(_host_memory() * GENEROUS_MEMORY_SHARE))
    reasoning = [
        f"ran once with generous limits: {cpus:g} CPUs, {size_text(memory)} memory "
        f"(the blueprint gives {limits.cpus:g} CPUs, {size_text(limits.memory)})"
    ]
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="profile-", dir=settings.state_dir))
    engine = Engine(connect())
    container: Any = None
    token = secrets.token_hex(8)  # finds the container should an interrupt beat `start`
    try:
        laid = lay_out(item, image_id, settings, work, data, config)
        labels = {**laid.spec.labels, "ncaas.profile": token}
        spec = replace(laid.spec, cpus=cpus, memory=memory, labels=labels)
        emit(on_progress, "step", f"running {item.blueprint.analysis} on {data.name}")
        started = time.monotonic()
        container = engine.start(spec)
        container.reload()
        sampler = CgroupSampler(int(container.attrs["State"]["Pid"] or 0)).start()
        gpu = GpuSampler(sampler.memory if limits.gpu else None).start()
        reader = threading.Thread(
            target=_relay, args=(Engine.stream_output(container), data.name, on_progress)
        )
        reader.daemon = True
        reader.start()
        exit = Engine.wait(container, timeout=item.blueprint.run.timeout)
        wall = time.monotonic() - started
        if exit is None:
            Engine.kill(container)
        usage = sampler.stop()
        gpu_peak = gpu.stop()
        reader.join(timeout=10)
        give_back(laid.output)
        output_bytes = _folder_bytes(laid.output)
    finally:
        if container is not None:
            Engine.remove(container)
        remove_labelled(engine, f"ncaas.profile={token}")
        shutil.rmtree(work, ignore_errors=True)
    measured: dict[str, Any] = {
        "exit_code": exit.exit_code if exit else None,
        "peak_memory_bytes": usage.peak_memory_bytes,
        "cpu_seconds": round(usage.cpu_seconds, 3),
        "wall_seconds": round(wall, 3),
        "output_bytes": output_bytes,
        "headroom": headroom,
        "gpu_memory_bytes": gpu_peak,
    }
    reasoning.append(f"sampled {usage.samples} time(s) from {usage.source}")
    failure = _failure(exit, item.blueprint.run.timeout)
    if failure is not None:
        reasoning.append("the run failed, so nothing is recommended")
        return ProfileReport(succeeded=False, reason=failure, reasoning=reasoning, **measured)
    need = need_of(
        usage.peak_memory_bytes, usage.cpu_seconds, wall, headroom, limits.gpu, gpu_peak or 0
    )
    reasoning.append(
        f"needs {size_text(need.memory_bytes)} memory (peak {size_text(usage.peak_memory_bytes)} "
        f"x {headroom:g}) and {need.cpus} vCPU(s) ({usage.cpu_seconds:.1f} s CPU in "
        f"{wall:.1f} s = {usage.cpu_seconds / wall if wall else 0:.2f} busy core(s) x {headroom:g})"
    )
    if limits.gpu and gpu_peak is None:
        reasoning.append("GPU memory not measured (no nvidia-smi): any current NVIDIA type fits")
    elif limits.gpu:
        reasoning.append(
            f"needs {size_text(need.gpu_memory_bytes)} of GPU memory (peak "
            f"{size_text(gpu_peak or 0)} x {headroom:g})"
        )
    kind = cheapest(need)
    if kind is None:
        reasoning.append("no instance type in the price table fits")
        return ProfileReport(
            succeeded=True, reason=None, reasoning=reasoning, cpus_needed=need.cpus,
            memory_needed_bytes=need.memory_bytes, **measured,
        )  # fmt: skip
    cost = cost_per_dataset(kind, wall)
    reasoning.append(
        f"cheapest fitting type (burstable t-types left out): {kind.name}, {kind.vcpus} vCPUs, "
        f"{size_text(kind.memory_bytes)}, ${kind.price_per_hour}/h; a dataset costs ${cost:.4f} "
        "(per-second billing, one-minute minimum)"
    )
    written = None
    if write:
        from .write import write_resources

        write_resources(item.folder, need.cpus, size_text(need.memory_bytes), kind.name)
        written = str(item.folder / "blueprint.yaml")
        reasoning.append(f"wrote resources.cpus, .memory and cloud.instance_type to {written}")
    return ProfileReport(
        succeeded=True,
        reason=None,
        cpus_needed=need.cpus,
        memory_needed_bytes=need.memory_bytes,
        recommended_instance_type=kind.name,
        recommended_vcpus=kind.vcpus,
        recommended_memory_bytes=kind.memory_bytes,
        price_per_hour_usd=kind.price_per_hour,
        cost_per_dataset_usd=cost,
        cost_per_100_datasets_usd=round(cost * 100, 4),
        reasoning=reasoning,
        written=written,
        **measured,
    )


def _failure(exit: Any, timeout: int) -> str | None:
    if exit is None:
        return f"killed at the timeout: still running after {timeout} s (run.timeout)"
    if exit.oom_killed:
        return "out of memory even with generous limits"
    if exit.exit_code != 0:
        return f"the analysis exited with code {exit.exit_code}"
    return None


def _relay(chunks: Any, dataset: str, on_progress: OnProgress | None) -> None:
    from ..api.progress import emit

    partial = ""
    for chunk in chunks:
        partial += chunk.decode("utf-8", "replace")
        *lines, partial = partial.split("\n")
        for line in lines:
            emit(on_progress, "log", line, dataset=dataset)
    if partial:
        emit(on_progress, "log", partial, dataset=dataset)
