"""A dataset laid out as a real run lays it out, outside any job: the folders a runner fills,
the ``DatasetTask`` it would get and the container spec it would start (``runner.container_spec``),
so `profile` and `shell` run the analysis exactly as a job does."""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from ..analysis import AnalysisRecord
from ..blueprint import LoadedBlueprint
from ..containers import ContainerSpec, Engine, Mount, containers_where
from ..errors import UsageError
from ..launchers.base import DatasetTask
from ..layout import group_prefix
from ..runs.runner import container_spec, sandbox_ids
from ..settings import Settings


@dataclass(frozen=True)
class Laid:
    task: DatasetTask
    spec: ContainerSpec
    work: Path  # holds input/, config/ (and output/ unless elsewhere)
    output: Path


def check_files(data: Path | None, config: Path | None) -> None:
    for path, option in ((data, "--data"), (config, "--config")):
        if path is not None and not path.is_file():
            raise UsageError(f"{path}: no such file", hint=f"check the path given to {option}")


def lay_out(
    item: LoadedBlueprint,
    image_id: str,
    settings: Settings,
    work: Path,
    data: Path | None,
    config: Path | None,
    group: str | None = None,
    output: Path | None = None,
    job_prefix: str = "profile",
) -> Laid:
    """Copy ``data`` and ``config`` into ``work`` as a runner would fetch them; the output folder
    is ``output`` (created) or ``work/output``, writable by the analysis's user."""
    blueprint = item.blueprint
    group = group or blueprint.groups[0].name
    if blueprint.group(group) is None:
        raise UsageError(
            f"group {group!r} is not in {item.folder}/blueprint.yaml",
            hint=f"choose one of {', '.join(g.name for g in blueprint.groups)}",
        )
    check_files(data, config)
    for sub in ("input", "config"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    out = (output or work / "output").resolve()
    out.mkdir(parents=True, exist_ok=True)
    if data is not None:
        shutil.copyfile(data, work / "input" / data.name)
    if config is not None:
        shutil.copyfile(config, work / "config" / config.name)
    dataset = data.name if data is not None else ""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    task = DatasetTask(
        bucket=blueprint.analysis,
        group=group,
        job=f"{job_prefix}_{stamp}",
        dataset=dataset,
        data_key=group_prefix(group, "inputs") + dataset,
        config_key=group_prefix(group, "configs") + config.name if config else None,
        record=AnalysisRecord.of(item, image_id),
        endpoint_url=settings.endpoint_url,
        region=settings.region,
    )
    spec = container_spec(task, work, settings.analysis_network)
    if output is not None:  # the output mount points at the caller's folder
        mounts = [
            m if m.target != "/ncaas/output" else Mount(out, m.target, m.read_only)
            for m in spec.mounts
        ]
        spec = replace(spec, mounts=mounts)
    uid, gid = sandbox_ids()
    shutil.chown(out, uid, gid)  # the sandbox user may write here (as a runner arranges)
    return Laid(task, spec, work, out)


def remove_labelled(engine: Engine, label: str) -> None:
    """Remove every container carrying ``label`` (``key=value``); gone already is as good."""
    with contextlib.suppress(Exception):
        for found in containers_where(engine.client, {"label": label}):
            Engine.remove(found)
