"""The job commands: `run` (the whole loop), `submit`, `jobs`, `logs` and `results`."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import JobFailed, NcaasError, UsageError
from .common import (
    EndpointOpt,
    GroupOpt,
    JsonOpt,
    LauncherOpt,
    check_launcher,
    console,
    emit_json,
    err,
    escape,
)
from .context import Context, open_analysis
from .follow import follow_job
from .stack import bring_up

if TYPE_CHECKING:
    from ..blueprint import LoadedBlueprint
    from ..status import JobStatus


def _require_ami(ctx: Context, loaded: LoadedBlueprint) -> None:
    """Refuse to submit work no instance could start; ``cloud.ami`` is set (checked before)."""
    from ..aws import ec2_client
    from ..containers import Engine, connect
    from ..launchers.ec2 import check_ami

    ami = loaded.blueprint.cloud.ami
    assert ami is not None
    image_id = Engine(connect()).image_id(loaded.blueprint.image_tag)
    try:
        region = loaded.blueprint.cloud.region
        ec2 = ec2_client(replace(ctx.settings, region=region))
        check_ami(ec2, ami, image_id, region, ctx.settings)
    except NcaasError as e:
        raise UsageError(e.message, hint=e.hint) from e


def _job_doc(status: JobStatus, results: Path | None = None) -> dict[str, Any]:
    doc = status.model_dump(mode="json", exclude={"events"})
    if results is not None:
        doc["results_dir"] = str(results)
    return doc


def _summary(status: JobStatus, results: Path | None) -> None:
    from rich.table import Table

    from ..status import State

    table = Table(title=f"{status.job}: {status.state.value}", title_justify="left")
    for column in ("dataset", "state", "exit", "reason"):
        table.add_column(column)
    for name, ds in status.datasets.items():
        color = "green" if ds.state == State.SUCCEEDED else "red"
        table.add_row(
            name,
            f"[{color}]{ds.state.value}[/{color}]",
            "" if ds.exit_code is None else str(ds.exit_code),
            escape(ds.reason or ""),
        )
    console.print(table)
    if results is not None:
        console.print(f"results: {results}")


def _finish(status: JobStatus) -> None:
    from ..status import State

    if status.state != State.SUCCEEDED:
        raise JobFailed(f"job {status.job} {status.state.value}: {status.reason}")


def run(
    blueprint_dir: Annotated[Path, typer.Argument(help="Blueprint folder.")],
    data: Annotated[
        list[Path], typer.Option("--data", help="Dataset file or folder (repeatable).")
    ],
    config: Annotated[Path | None, typer.Option("--config", help="Config file.")] = None,
    group: GroupOpt = None,
    out: Annotated[Path, typer.Option("--out", help="Where results go.")] = Path("ncaas-results"),
    launcher: LauncherOpt = "docker",
    endpoint_url: EndpointOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Build, start the local stack, upload, submit, follow, download: the whole job."""
    from ..blueprint import load_blueprint

    loaded = load_blueprint(blueprint_dir)
    group = group or loaded.blueprint.groups[0].name
    if loaded.blueprint.group(group) is None:
        raise UsageError(
            f"group {group!r} is not in {loaded.folder}/blueprint.yaml",
            hint=f"choose one of {', '.join(g.name for g in loaded.blueprint.groups)}",
        )
    for path in [*data, *([config] if config else [])]:
        if not (path.is_file() or (path.is_dir() and path in data)):  # a folder: one dataset
            raise UsageError(f"{path}: no such file", hint="check --data and --config")
    if check_launcher(launcher) == "ec2" and not loaded.blueprint.cloud.ami:
        raise UsageError(
            f"{loaded.folder}/blueprint.yaml has no cloud.ami, and the ec2 launcher starts each "
            "dataset's instance from the baked AMI",
            hint=f"run `ncaas-dev bake {blueprint_dir}` first, or use --launcher docker",
        )
    ctx = Context.create(endpoint_url)
    say = err.print if as_json else console.print
    bring_up(ctx, launcher, [loaded.folder], quiet=as_json)
    if launcher == "ec2":
        _require_ami(ctx, loaded)
    from ..client import AnalysisClient

    client = AnalysisClient(ctx.storage, loaded.blueprint.analysis)
    data_keys = [_upload(client, path, group, "inputs", as_json) for path in data]
    config_key = _upload(client, config, group, "configs", as_json) if config else None
    submitted = client.submit(group, data_keys, config_key)
    say(f"submitted s3://{client.bucket}/{submitted.key}")
    job = _wait_for_job(client, submitted, ctx)
    say(f"job {job}")
    final = follow_job(client, group, job, say if not as_json else (lambda _: None))
    results = client.download(group, job, out)
    if as_json:
        emit_json(_job_doc(final, results))
    else:
        _summary(final, results)
    _finish(final)


def _upload(client: Any, path: Path, group: str, folder: str, quiet: bool) -> str:
    size = path.stat().st_size
    if quiet or size < 8 * 1024**2:
        return str(client.upload(path, group, folder))
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err,
    ) as progress:
        bar = progress.add_task(f"upload {path.name}", total=size)
        return str(client.upload(path, group, folder, lambda n: progress.advance(bar, n)))


def _wait_for_job(client: Any, submitted: Any, ctx: Context, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.job_of(submitted)
        if job:
            return str(job)
        time.sleep(0.05)
    raise NcaasError(
        f"no dispatcher picked up {submitted.key} within {timeout:.0f} s",
        hint=f"is it running? `ncaas-dev status`; its log: {ctx.settings.state_dir}/dispatcher.log",
    )


def submit(
    analysis: Annotated[str, typer.Argument(help="Blueprint folder or analysis name.")],
    data: Annotated[list[str], typer.Option("--data", help="Local file or S3 key (repeatable).")],
    config: Annotated[str | None, typer.Option("--config", help="Local file or S3 key.")] = None,
    group: GroupOpt = None,
    timestamp: Annotated[str | None, typer.Option(help="Names the job folder.")] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the job; exit 1 unless it succeeds.")
    ] = False,
    endpoint_url: EndpointOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Upload files (or use keys already in S3) and write a submission; print the job."""
    opened = open_analysis(analysis, endpoint_url, group)
    ctx, client, group = opened.ctx, opened.client, opened.group

    def key_of(item: str, folder: str) -> str:
        path = Path(item)
        local = path.is_file() or (path.is_dir() and folder == "inputs")  # a folder: one dataset
        return _upload(client, path, group, folder, as_json) if local else item

    keys = [key_of(item, "inputs") for item in data]
    submitted = client.submit(group, keys, key_of(config, "configs") if config else None, timestamp)
    job = _wait_for_job(client, submitted, ctx)
    if not wait:
        if as_json:
            emit_json({"submission": submitted.key, "job": job, "group": group})
        else:
            console.print(f"submitted {submitted.key} -> {job}")
        return
    say = err.print if as_json else console.print
    say(f"submitted {submitted.key} -> {job}")
    final = follow_job(client, group, job, say if not as_json else (lambda _: None))
    if as_json:
        emit_json(_job_doc(final))
    else:
        _summary(final, None)
    _finish(final)


def jobs(
    analysis: Annotated[str, typer.Argument(help="Blueprint folder or analysis name.")],
    group: GroupOpt = None,
    endpoint_url: EndpointOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List a group's jobs and their states."""
    opened = open_analysis(analysis, endpoint_url, group)
    found = opened.client.jobs(opened.group)
    if as_json:
        emit_json([_job_doc(s) for s in found])
        return
    from rich.table import Table

    table = Table()
    for column in ("job", "state", "datasets", "created", "reason"):
        table.add_column(column)
    for s in found:
        table.add_row(s.job, s.state.value, str(len(s.datasets)), s.created, escape(s.reason or ""))
    console.print(table)


def logs(
    analysis: Annotated[str, typer.Argument(help="Blueprint folder or analysis name.")],
    job: Annotated[str, typer.Argument(help="Job folder name, e.g. job_20261124T203000Z.")],
    dataset: Annotated[str | None, typer.Option(help="Only this dataset.")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep following.")] = False,
    group: GroupOpt = None,
    endpoint_url: EndpointOpt = None,
) -> None:
    """Print a job's dispatcher log and analysis output (``-f`` follows until it ends)."""
    opened = open_analysis(analysis, endpoint_url, group)
    client, group = opened.client, opened.group
    if follow:
        final = follow_job(client, group, job, console.print, dataset=dataset)
        console.print(
            f"{final.job}: {final.state.value}" + (f" ({final.reason})" if final.reason else "")
        )
        return
    status_ = client.status(group, job)
    for event in status_.events:
        console.print(f"[dim]{event.time}[/dim] {escape(event.message)}")
    for name in status_.datasets:
        if dataset and name != dataset:
            continue
        text = client.log_since(group, job, name, 0).decode("utf-8", "replace")
        for line in text.splitlines():
            console.print(f"[cyan]{name}[/cyan] | {escape(line)}")


def results(
    analysis: Annotated[str, typer.Argument(help="Blueprint folder or analysis name.")],
    job: Annotated[str, typer.Argument(help="Job folder name.")],
    group: GroupOpt = None,
    out: Annotated[Path, typer.Option("--out", help="Where results go.")] = Path("ncaas-results"),
    endpoint_url: EndpointOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Download a job folder into OUT/{job}/ and print its summary."""
    opened = open_analysis(analysis, endpoint_url, group)
    client, group = opened.client, opened.group
    status_ = client.status(group, job)
    folder = client.download(group, job, out)
    if as_json:
        emit_json(_job_doc(status_, folder))
    else:
        _summary(status_, folder)
