"""``ncaas-dev``: a thin command line over the library.

Each command builds its own clients (see ``context``), calls the library and renders the
result; errors are translated once, in ``main``.
"""

from __future__ import annotations

import logging
import sys
import time
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from .. import __version__
from ..blueprint import LoadedBlueprint, load_blueprint
from ..errors import JobFailed, NcaasError, UsageError
from ..status import JobStatus, State
from .bake import register as register_bake
from .common import (
    EndpointOpt,
    GroupOpt,
    JsonOpt,
    LauncherOpt,
    console,
    emit_json,
    err,
)
from .context import Context, analysis_client, resolve_target
from .deploy import register as register_deploy
from .doctor import register as register_doctor
from .follow import follow_job

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Turn a research analysis into a cloud service: run it locally exactly as in the cloud.",
)
state: dict[str, bool] = {"debug": False}


def _check_launcher(launcher: str) -> str:
    if launcher not in ("docker", "ec2"):
        raise UsageError(f"unknown launcher {launcher!r}", hint="use --launcher docker or ec2")
    return launcher


def _print_version(value: bool) -> None:
    if value:
        console.print(__version__)
        raise typer.Exit(0)


@app.callback()
def _options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    state["debug"] = debug


@app.command()
def init(name: Annotated[Path, typer.Argument(help="Folder of the new blueprint.")]) -> None:
    """Scaffold a blueprint folder that runs as it is."""
    from ..scaffold import scaffold

    folder = scaffold(name)
    console.print(f"created {folder}/ (blueprint.yaml, Dockerfile, main.py, README.md)")
    console.print(f"try it: echo hello > sample.txt && ncaas-dev run {folder} --data sample.txt")


@app.command()
def build(
    blueprint_dir: Annotated[Path, typer.Argument(help="Blueprint folder.")],
    as_json: JsonOpt = False,
) -> None:
    """Build the analysis image (cached by Docker's layer cache)."""
    from ..containers import Engine, connect

    loaded = load_blueprint(blueprint_dir)
    engine = Engine(connect())
    started = time.monotonic()
    with err.status(f"building {loaded.blueprint.image_tag}") as spinner:
        image_id = engine.build(loaded, on_line=lambda line: spinner.update(escape(line[:100])))
    if as_json:
        emit_json({"image": loaded.blueprint.image_tag, "image_id": image_id})
    else:
        console.print(
            f"built {loaded.blueprint.image_tag} ({image_id[:19]}) "
            f"in {time.monotonic() - started:.1f} s"
        )


def _bring_up(ctx: Context, launcher: str, blueprint_dirs: list[Path], quiet: bool) -> None:
    from ..analysis import AnalysisRecord, load_record
    from ..buildcache import cached_build
    from ..containers import Engine, connect
    from ..provision import provision
    from ..stack import (
        PidFile,
        start_command_server,
        start_dispatcher,
        start_localstack,
        start_standin,
    )

    loaded = [load_blueprint(d) for d in blueprint_dirs]
    engine = Engine(connect()) if loaded else None
    with err.status("starting LocalStack") if not quiet else nullcontext():
        start_localstack(ctx.settings)
    for item in loaded:
        assert engine is not None
        # A changed analysis must never run as its stale image: build unless the context
        # is provably unchanged since the last build of this tag.
        with err.status(f"building {item.blueprint.image_tag}") if not quiet else nullcontext():
            image_id = cached_build(item, ctx.settings.state_dir, engine.build, engine.image_id)
        # Provisioning again is skipped when the stack already holds this exact record.
        record = AnalysisRecord.of(item, image_id)
        if load_record(ctx.storage, record.blueprint.analysis) != record:
            provision(ctx.storage, ctx.sqs, ctx.settings, record)
    if launcher == "ec2" and ctx.settings.local:
        start_standin(ctx.settings)
    start_command_server(ctx.settings)
    info = start_dispatcher(ctx.settings, launcher)
    if info.detail.get("launcher", launcher) != launcher:
        # Runners run in sessions of their own and finish whatever the dispatcher does.
        if not quiet:
            err.print(f"switching the dispatcher from {info.detail['launcher']} to {launcher}")
        PidFile(ctx.settings.state_dir, "dispatcher").stop()
        start_dispatcher(ctx.settings, launcher)


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


@app.command()
def up(
    blueprint_dirs: Annotated[
        list[Path] | None, typer.Argument(help="Blueprints to provision (default: ./blueprints/*).")
    ] = None,
    launcher: LauncherOpt = "docker",
    endpoint_url: EndpointOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Start the local stack (LocalStack + dispatcher) and provision blueprints on it."""
    ctx = Context.create(endpoint_url)
    dirs = blueprint_dirs
    if dirs is None:
        dirs = sorted(p.parent for p in Path("blueprints").glob("*/blueprint.yaml"))
    _bring_up(ctx, _check_launcher(launcher), dirs, quiet=as_json)
    _print_status(ctx, as_json)


@app.command()
def down(endpoint_url: EndpointOpt = None) -> None:
    """Stop what `up` started (the command server, the dispatcher, the EC2 stand-in, then
    LocalStack)."""
    from ..stack import PidFile

    ctx = Context.create(endpoint_url)
    for name in ("cmdserver", "dispatcher", "ec2-standin", "localstack"):
        stopped = PidFile(ctx.settings.state_dir, name).stop()
        console.print(f"{name}: {'stopped' if stopped else 'was not running'}")


def _status_doc(ctx: Context) -> dict[str, Any]:
    from ..provision import provisioned_analyses
    from ..stack import PidFile, endpoint_answers

    localstack = PidFile(ctx.settings.state_dir, "localstack").read()
    dispatcher = PidFile(ctx.settings.state_dir, "dispatcher").read()
    standin = PidFile(ctx.settings.state_dir, "ec2-standin").read()
    answering = endpoint_answers(ctx.settings.endpoint_url or "")
    analyses = provisioned_analyses(ctx.storage) if answering else []
    return {
        "endpoint": ctx.settings.endpoint_url,
        "endpoint_answers": answering,
        "localstack": {"running": localstack.running or answering, "pid": localstack.pid},
        "dispatcher": {
            "running": dispatcher.running,
            "pid": dispatcher.pid,
            "launcher": dispatcher.detail.get("launcher", "docker"),
        },
        "ec2_standin": {"running": standin.running, "pid": standin.pid},
        "analyses": analyses,
        "state_dir": str(ctx.settings.state_dir),
    }


def _print_status(ctx: Context, as_json: bool) -> None:
    doc = _status_doc(ctx)
    if as_json:
        emit_json(doc)
        return
    ls, dp = doc["localstack"], doc["dispatcher"]
    console.print(
        f"LocalStack  {'[green]running[/green]' if ls['running'] else '[red]stopped[/red]'}"
        f"  {doc['endpoint']}" + (f" (pid {ls['pid']})" if ls["pid"] else "")
    )
    console.print(
        f"dispatcher  {'[green]running[/green]' if dp['running'] else '[red]stopped[/red]'}"
        + (f"  launcher {dp['launcher']} (pid {dp['pid']})" if dp["running"] else "")
    )
    if doc["ec2_standin"]["running"]:
        console.print(f"EC2 stand-in [green]running[/green] (pid {doc['ec2_standin']['pid']})")
    console.print(f"analyses    {', '.join(doc['analyses']) or '(none)'}")


@app.command()
def status(endpoint_url: EndpointOpt = None, as_json: JsonOpt = False) -> None:
    """Say what runs: LocalStack, the dispatcher, the analyses provisioned."""
    _print_status(Context.create(endpoint_url), as_json)


@app.command()
def dispatch(
    launcher: LauncherOpt = "docker",
    endpoint_url: EndpointOpt = None,
) -> None:
    """Run the dispatcher loop in the foreground (`up` starts it in the background)."""
    from ..dispatcher import Dispatcher
    from ..launchers.base import Launcher
    from ..launchers.docker import DockerLauncher
    from ..launchers.ec2 import Ec2Launcher
    from ..queue import QueueLoop, ensure_queue

    logging.basicConfig(level=logging.INFO, format="%(asctime)s dispatcher %(message)s")
    _check_launcher(launcher)
    ctx = Context.create(endpoint_url)
    ctx.require_stack()
    queue_url, _ = ensure_queue(ctx.sqs, ctx.settings.endpoint_url)
    launcher_: Launcher
    if launcher == "ec2":
        launcher_ = Ec2Launcher(ctx.settings, ctx.storage)
    else:
        docker_launcher = DockerLauncher(ctx.settings.state_dir, ctx.settings.endpoint_url)
        docker_launcher.warm()
        launcher_ = docker_launcher
    dispatcher = Dispatcher(
        ctx.storage,
        launcher_,
        ctx.settings.endpoint_url,
        ctx.settings.region,
    )
    recovered = dispatcher.recover()
    logging.getLogger(__name__).info(
        "serving %s with the %s launcher; %d queued dataset(s) recovered",
        queue_url,
        launcher,
        recovered,
    )
    QueueLoop(ctx.sqs, queue_url, dispatcher).run_forever()


def _job_doc(status: JobStatus, results: Path | None = None) -> dict[str, Any]:
    doc = status.model_dump(mode="json", exclude={"events"})
    if results is not None:
        doc["results_dir"] = str(results)
    return doc


def _summary(status: JobStatus, results: Path | None) -> None:
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
    if status.state != State.SUCCEEDED:
        raise JobFailed(f"job {status.job} {status.state.value}: {status.reason}")


@app.command()
def run(
    blueprint_dir: Annotated[Path, typer.Argument(help="Blueprint folder.")],
    data: Annotated[list[Path], typer.Option("--data", help="Dataset file (repeatable).")],
    config: Annotated[Path | None, typer.Option("--config", help="Config file.")] = None,
    group: GroupOpt = None,
    out: Annotated[Path, typer.Option("--out", help="Where results go.")] = Path("ncaas-results"),
    launcher: LauncherOpt = "docker",
    endpoint_url: EndpointOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Build, start the local stack, upload, submit, follow, download: the whole job."""
    loaded = load_blueprint(blueprint_dir)
    group = group or loaded.blueprint.groups[0].name
    if loaded.blueprint.group(group) is None:
        raise UsageError(
            f"group {group!r} is not in {loaded.folder}/blueprint.yaml",
            hint=f"choose one of {', '.join(g.name for g in loaded.blueprint.groups)}",
        )
    for path in [*data, *([config] if config else [])]:
        if not path.is_file():
            raise UsageError(f"{path}: no such file", hint="check --data and --config")
    if _check_launcher(launcher) == "ec2" and not loaded.blueprint.cloud.ami:
        raise UsageError(
            f"{loaded.folder}/blueprint.yaml has no cloud.ami, and the ec2 launcher starts each "
            "dataset's instance from the baked AMI",
            hint=f"run `ncaas-dev bake {blueprint_dir}` first, or use --launcher docker",
        )
    ctx = Context.create(endpoint_url)
    say = err.print if as_json else console.print
    _bring_up(ctx, launcher, [loaded.folder], quiet=as_json)
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
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    size = path.stat().st_size
    if quiet or size < 8 * 1024**2:
        return str(client.upload(path, group, folder))
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


@app.command()
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
    ctx = Context.create(endpoint_url)
    target = resolve_target(ctx, analysis)
    client = analysis_client(ctx, target)
    group = group or target.default_group or ""

    def key_of(item: str, folder: str) -> str:
        path = Path(item)
        return _upload(client, path, group, folder, as_json) if path.is_file() else item

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


@app.command()
def jobs(
    analysis: Annotated[str, typer.Argument(help="Blueprint folder or analysis name.")],
    group: GroupOpt = None,
    endpoint_url: EndpointOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List a group's jobs and their states."""
    ctx = Context.create(endpoint_url)
    target = resolve_target(ctx, analysis)
    client = analysis_client(ctx, target)
    found = client.jobs(group or target.default_group or "")
    if as_json:
        emit_json([_job_doc(s) for s in found])
        return
    table = Table()
    for column in ("job", "state", "datasets", "created", "reason"):
        table.add_column(column)
    for s in found:
        table.add_row(s.job, s.state.value, str(len(s.datasets)), s.created, escape(s.reason or ""))
    console.print(table)


@app.command()
def logs(
    analysis: Annotated[str, typer.Argument(help="Blueprint folder or analysis name.")],
    job: Annotated[str, typer.Argument(help="Job folder name, e.g. job_20261124T203000Z.")],
    dataset: Annotated[str | None, typer.Option(help="Only this dataset.")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep following.")] = False,
    group: GroupOpt = None,
    endpoint_url: EndpointOpt = None,
) -> None:
    """Print a job's dispatcher log and analysis output (``-f`` follows until it ends)."""
    ctx = Context.create(endpoint_url)
    target = resolve_target(ctx, analysis)
    client = analysis_client(ctx, target)
    group = group or target.default_group or ""
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


@app.command()
def results(
    analysis: Annotated[str, typer.Argument(help="Blueprint folder or analysis name.")],
    job: Annotated[str, typer.Argument(help="Job folder name.")],
    group: GroupOpt = None,
    out: Annotated[Path, typer.Option("--out", help="Where results go.")] = Path("ncaas-results"),
    endpoint_url: EndpointOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Download a job folder into OUT/{job}/ and print its summary."""
    ctx = Context.create(endpoint_url)
    target = resolve_target(ctx, analysis)
    client = analysis_client(ctx, target)
    group = group or target.default_group or ""
    status_ = client.status(group, job)
    folder = client.download(group, job, out)
    if as_json:
        emit_json(_job_doc(status_, folder))
    else:
        _summary(status_, folder)


# Commands that live in modules of their own.
for _register in (register_bake, register_deploy, register_doctor):
    _register(app)


def main() -> None:
    """Entry point: the one place errors become a line of text and an exit code.

    Typer's standalone mode already answers bad usage with exit 2; our errors pass through.
    """
    try:
        app()
    except NcaasError as e:
        if state["debug"]:
            raise
        # soft_wrap: the reason stays one line whatever the terminal's width (scripts grep it).
        err.print(f"[red]error:[/red] {escape(e.message)}", soft_wrap=True)
        if e.hint:
            err.print(f"[dim]hint: {escape(e.hint)}[/dim]", soft_wrap=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
