"""The local stack's commands: `up`, `down`, `status` and `dispatch`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .common import EndpointOpt, JsonOpt, LauncherOpt, check_launcher, console, emit_json, err
from .context import Context
from .render import Renderer

if TYPE_CHECKING:
    from ..api.stack import StackStatus


def up(
    blueprint_dirs: Annotated[
        list[Path] | None, typer.Argument(help="Blueprints to provision (default: ./blueprints/*).")
    ] = None,
    launcher: LauncherOpt = "docker",
    endpoint_url: EndpointOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Start the local stack (LocalStack + dispatcher) and provision blueprints on it."""
    from ..api.stack import up as bring_up

    dirs = blueprint_dirs
    if dirs is None:
        dirs = sorted(p.parent for p in Path("blueprints").glob("*/blueprint.yaml"))
    render = Renderer(err.print, quiet=as_json)
    doc = bring_up(
        dirs, launcher=check_launcher(launcher), endpoint_url=endpoint_url, on_progress=render
    )
    print_status(doc, as_json)


def down(endpoint_url: EndpointOpt = None) -> None:
    """Stop what `up` started (the command server, the dispatcher, the EC2 stand-in, then
    LocalStack)."""
    from ..api.stack import down as stop

    for name, stopped in stop(endpoint_url=endpoint_url).items():
        console.print(f"{name}: {'stopped' if stopped else 'was not running'}")


def print_status(doc: StackStatus, as_json: bool) -> None:
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


def status(endpoint_url: EndpointOpt = None, as_json: JsonOpt = False) -> None:
    """Say what runs: LocalStack, the dispatcher, the analyses provisioned."""
    from ..api.stack import status as stack_status

    print_status(stack_status(endpoint_url=endpoint_url), as_json)


def dispatch(
    launcher: LauncherOpt = "docker",
    endpoint_url: EndpointOpt = None,
) -> None:
    """Run the dispatcher loop in the foreground (`up` starts it in the background)."""
    import logging

    from ..dispatcher import Dispatcher
    from ..launchers.base import Launcher
    from ..launchers.docker import DockerLauncher
    from ..launchers.ec2 import Ec2Launcher
    from ..provision import ensure_queue
    from ..queue import QueueLoop

    logging.basicConfig(level=logging.INFO, format="%(asctime)s dispatcher %(message)s")
    check_launcher(launcher)
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
