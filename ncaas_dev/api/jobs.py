"""Jobs: ``run`` (the whole loop), ``submit``, ``jobs`` and ``job``."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import NcaasError, UsageError
from .context import Context, open_analysis
from .job import Job
from .progress import OnProgress, emit
from .project import BlueprintLike, loaded

if TYPE_CHECKING:
    from ..blueprint import LoadedBlueprint
    from ..client import AnalysisClient, Submitted

PathLike = str | os.PathLike[str]


def run(
    bp: BlueprintLike,
    data: Sequence[PathLike],
    config: PathLike | None = None,
    group: str | None = None,
    out: PathLike | None = None,
    *,
    launcher: str = "docker",
    endpoint_url: str | None = None,
    timeout: float | None = None,
    on_progress: OnProgress | None = None,
) -> Job:
    """Build the image (cached), start the local stack if need be, upload ``data`` (local
    files) and ``config``, submit, and block until the job ends. With ``out``, the job folder
    is downloaded into ``out/{job}/`` (``job.results_dir``). Returns the ended ``Job`` whatever
    its state (``job.check()`` raises ``JobFailed`` unless it succeeded); raises
    ``JobTimeout`` after ``timeout`` seconds, ``UsageError`` for a bad group, file or launcher.
    """
    from ..launchers.names import check_launcher

    item = loaded(bp)
    group = group or item.blueprint.groups[0].name
    if item.blueprint.group(group) is None:
        raise UsageError(
            f"group {group!r} is not in {item.folder}/blueprint.yaml",
            hint=f"choose one of {', '.join(g.name for g in item.blueprint.groups)}",
        )
    paths = [Path(p) for p in data]
    if not paths:
        raise UsageError("no data given", hint="give at least one dataset file or folder")
    for path in [*paths, *([Path(config)] if config else [])]:
        if not (path.is_file() or (path.is_dir() and path in paths)):  # a folder: one dataset
            raise UsageError(f"{path}: no such file", hint="check --data and --config")
    if check_launcher(launcher) == "ec2" and not item.blueprint.cloud.ami:
        raise UsageError(
            f"{item.folder}/blueprint.yaml has no cloud.ami, and the ec2 launcher starts each "
            "dataset's instance from the baked AMI",
            hint=f"run `ncaas-dev bake {item.folder}` first, or use --launcher docker",
        )
    from ..client import AnalysisClient
    from .stack import bring_up

    ctx = Context.create(endpoint_url)
    bring_up(ctx, launcher, [item], on_progress)
    if launcher == "ec2":
        _require_ami(ctx, item)
    client = AnalysisClient(ctx.storage, item.blueprint.analysis)
    data_keys = [upload(client, path, group, "inputs", on_progress) for path in paths]
    config_key = upload(client, Path(config), group, "configs", on_progress) if config else None
    submitted = client.submit(group, data_keys, config_key)
    emit(on_progress, "step", f"submitted s3://{client.bucket}/{submitted.key}")
    job = Job(client, group, wait_for_job(client, submitted, ctx))
    emit(on_progress, "step", f"job {job.name}")
    job.wait(timeout, on_progress)
    if out is not None:
        job.download(out)
    return job


def submit(
    analysis: BlueprintLike,
    data: Sequence[PathLike],
    config: PathLike | None = None,
    group: str | None = None,
    *,
    timestamp: str | None = None,
    endpoint_url: str | None = None,
    cloud: bool = False,
    on_progress: OnProgress | None = None,
) -> Job:
    """Write a submission and return its ``Job`` at once (once the dispatcher has named it).

    ``analysis``: a blueprint folder (or loaded blueprint) or the name of an analysis on the
    stack. Each of ``data`` and ``config`` is a local file (uploaded into the group's
    ``inputs/`` or ``configs/``), a local folder in ``data`` (uploaded whole, one dataset),
    or else an S3 key already in the bucket
    (``labA/inputs/rec.bin``). Wait for the end with ``job.wait(timeout=...)``.
    """
    target = analysis if isinstance(analysis, str) else str(loaded(analysis).folder)
    opened = open_analysis(target, endpoint_url, group, cloud)
    client, chosen = opened.client, opened.group

    def key_of(item: PathLike, folder: str) -> str:
        path = Path(item)
        if path.is_file() or (path.is_dir() and folder == "inputs"):  # a folder: one dataset
            return upload(client, path, chosen, folder, on_progress)
        return os.fspath(item)

    if not data:
        raise UsageError("no data given", hint="give at least one dataset (file or S3 key)")
    keys = [key_of(item, "inputs") for item in data]
    config_key = key_of(config, "configs") if config else None
    submitted = client.submit(chosen, keys, config_key, timestamp)
    emit(on_progress, "step", f"submitted {submitted.key}")
    return Job(client, chosen, wait_for_job(client, submitted, opened.ctx))


def jobs(
    analysis: BlueprintLike,
    group: str | None = None,
    *,
    endpoint_url: str | None = None,
    cloud: bool = False,
    limit: int | None = None,
    before: str | None = None,
) -> list[Job]:
    """A group's jobs (the blueprint's first group by default), newest first (by job folder
    name, which starts with its time). A page: ``limit`` jobs at most, and ``before`` the
    last job name of the previous page; only that page's status files are read."""
    target = analysis if isinstance(analysis, str) else str(loaded(analysis).folder)
    opened = open_analysis(target, endpoint_url, group, cloud)
    statuses = opened.client.jobs(opened.group, limit, before)
    return [Job.of(opened.client, opened.group, s) for s in statuses]


def not_submissions(
    analysis: BlueprintLike,
    group: str | None = None,
    *,
    endpoint_url: str | None = None,
    cloud: bool = False,
) -> list[str]:
    """Why each object in the group's ``submissions/`` that starts nothing does not (a
    misnamed submission such as ``bob7_Submit.json`` or ``bob5.json``), with the name to use.
    Cancel requests and job pointers are not listed: they belong there."""
    from ..layout import not_a_submission, submissions_prefix

    target = analysis if isinstance(analysis, str) else str(loaded(analysis).folder)
    opened = open_analysis(target, endpoint_url, group, cloud)
    client = opened.client
    found = client.storage.list_objects(client.bucket, submissions_prefix(opened.group))
    return [reason for obj in found if (reason := not_a_submission(obj.key))]


def job(
    analysis: BlueprintLike,
    name: str,
    group: str | None = None,
    *,
    endpoint_url: str | None = None,
    cloud: bool = False,
) -> Job:
    """One job by its folder name (``job_20261124T203000Z``); ``UsageError`` if there is none."""
    target = analysis if isinstance(analysis, str) else str(loaded(analysis).folder)
    opened = open_analysis(target, endpoint_url, group, cloud)
    return Job(opened.client, opened.group, name)


# -- the steps ---------------------------------------------------------------------------------
def upload(
    client: AnalysisClient,
    path: Path,
    group: str,
    folder: str,
    on_progress: OnProgress | None = None,
) -> str:
    """Upload into the group's ``folder``; large files report their bytes as ``advance``."""
    size = path.stat().st_size if path.is_file() else 0
    if on_progress is None or size < 8 * 1024**2:
        return client.upload(path, group, folder)
    emit(on_progress, "step", f"upload {path.name}", total=size)
    return client.upload(path, group, folder, lambda n: emit(on_progress, "advance", amount=n))


def wait_for_job(
    client: AnalysisClient, submitted: Submitted, ctx: Context, timeout: float = 60
) -> str:
    """The job folder the dispatcher made for ``submitted``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = client.job_of(submitted)
        if found:
            return found
        time.sleep(0.02)  # admission takes tens of milliseconds: run's latency is in this wait
    raise NcaasError(
        f"no dispatcher picked up {submitted.key} within {timeout:.0f} s",
        hint=f"is it running? `ncaas-dev status`; its log: {ctx.settings.state_dir}/dispatcher.log",
    )


def _require_ami(ctx: Context, item: LoadedBlueprint) -> None:
    """Refuse to submit work no instance could start; ``cloud.ami`` is set (checked before)."""
    from ..aws import ec2_client
    from ..cloud.ec2.images import check_ami
    from ..containers import Engine, connect

    ami = item.blueprint.cloud.ami
    assert ami is not None
    image_id = Engine(connect()).image_id(item.blueprint.image_tag)
    try:
        region = item.blueprint.cloud.region
        ec2 = ec2_client(replace(ctx.settings, region=region))
        check_ami(ec2, ami, image_id, region, ctx.settings, blueprint_dir=str(item.folder))
    except NcaasError as e:
        raise UsageError(e.message, hint=e.hint) from e
