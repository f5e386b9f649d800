"""The local stack's commands: `up`, `down`, `status` and `dispatch`."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer

from ..errors import UsageError
from .common import EndpointOpt, JsonOpt, LauncherOpt, check_launcher, console, emit_json, err
from .context import Context


def bring_up(ctx: Context, launcher: str, blueprint_dirs: list[Path], quiet: bool) -> None:
    from ..analysis import AnalysisRecord, load_record
    from ..blueprint import load_blueprint
    from ..buildcache import cached_build
    from ..compose import containers_status
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
    if launcher == "slurm":  # before anything starts: the cluster answers, partitions exist
        from ..slurmcheck import check_partition, require_slurm

        require_slurm()
        for item in loaded:
            check_partition(item.blueprint)
    engine = Engine(connect()) if loaded else None
    # The compose stack (`up --containers`) runs LocalStack and the dispatcher itself.
    in_containers = containers_status(ctx.settings.state_dir) is not None
    with err.status("starting LocalStack") if not quiet else nullcontext():
        if not in_containers:
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
    if in_containers:
        return  # the compose stack's dispatcher serves what was just provisioned
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


def up(
    blueprint_dirs: Annotated[
        list[Path] | None, typer.Argument(help="Blueprints to provision (default: ./blueprints/*).")
    ] = None,
    launcher: LauncherOpt = "docker",
    endpoint_url: EndpointOpt = None,
    as_json: JsonOpt = False,
    containers: Annotated[
        bool, typer.Option("--containers", help="Run the stack in containers (docker-compose).")
    ] = False,
) -> None:
    """Start the local stack (LocalStack + dispatcher) and provision blueprints on it."""
    ctx = Context.create(endpoint_url)
    dirs = blueprint_dirs
    if dirs is None:
        dirs = sorted(p.parent for p in Path("blueprints").glob("*/blueprint.yaml"))
    if containers:
        from ..compose import up as compose_up

        if check_launcher(launcher) != "docker":
            raise UsageError("--containers runs datasets with the docker launcher only")
        with err.status("starting the stack in containers") if not as_json else nullcontext():
            compose_up(ctx.settings, say=lambda line: None if as_json else err.print(line))
    bring_up(ctx, check_launcher(launcher), dirs, quiet=as_json)
    print_status(ctx, as_json)
    if not as_json:  # the lab members' way in (issue 8)
        console.print("web client: `ncaas-dev web` serves it and prints a sign-in URL")


def down(endpoint_url: EndpointOpt = None) -> None:
    """Stop what `up` started (the command server, the dispatcher, the EC2 stand-in, then
    LocalStack)."""
    from ..compose import down as compose_down
    from ..stack import STACK_PROCESSES, PidFile

    ctx = Context.create(endpoint_url)
    if stopped_stack := compose_down(ctx.settings):
        console.print(f"containers: stopped (compose project {stopped_stack.project})")
    for name in STACK_PROCESSES:
        stopped = PidFile(ctx.settings.state_dir, name).stop()
        console.print(f"{name}: {'stopped' if stopped else 'was not running'}")


def print_status(ctx: Context, as_json: bool) -> None:
    from ..stack_status import stack_status

    doc = stack_status(ctx.settings)
    if as_json:
        emit_json(doc)
        return
    ls, dp = doc["localstack"], doc["dispatcher"]
    kind = {"host": "host processes (`ncaas-dev up`)", "external": "not started here"}
    if doc.get("containers"):
        kind["containers"] = f"containers (compose project {doc['containers']['project']})"
    console.print(f"stack       {kind.get(doc['stack'] or '', 'none')}")
    console.print(
        f"LocalStack  {'[green]running[/green]' if ls['running'] else '[red]stopped[/red]'}"
        f"  {doc['endpoint']}" + (f" (pid {ls['pid']})" if ls["pid"] else "")
    )
    where = f"pid {dp['pid']}"
    if doc.get("containers"):
        where = f"container {doc['containers']['dispatcher']['container']}"
    console.print(
        f"dispatcher  {'[green]running[/green]' if dp['running'] else '[red]stopped[/red]'}"
        + (f"  launcher {dp['launcher']} ({where})" if dp["running"] else "")
    )
    if doc["ec2_standin"]["running"]:
        console.print(f"EC2 stand-in [green]running[/green] (pid {doc['ec2_standin']['pid']})")
    console.print(f"analyses    {', '.join(doc['analyses']) or '(none)'}")


def status(endpoint_url: EndpointOpt = None, as_json: JsonOpt = False) -> None:
    """Say what runs: LocalStack, the dispatcher, the analyses provisioned."""
    print_status(Context.create(endpoint_url), as_json)


def dispatch(
    launcher: LauncherOpt = "docker",
    endpoint_url: EndpointOpt = None,
) -> None:
    """Run the dispatcher loop in the foreground (`up` starts it in the background)."""
    import logging

    from ..dispatcher import Dispatcher
    from ..launchers.factory import make_launcher
    from ..provision import ensure_queue
    from ..queue import QueueLoop

    logging.basicConfig(level=logging.INFO, format="%(asctime)s dispatcher %(message)s")
    check_launcher(launcher)
    ctx = Context.create(endpoint_url)
    ctx.require_stack()
    queue_url, _ = ensure_queue(ctx.sqs, ctx.settings.endpoint_url)
    dispatcher = Dispatcher(
        ctx.storage,
        make_launcher(launcher, ctx.settings, ctx.storage),
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
