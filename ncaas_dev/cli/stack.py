"""The local stack's commands: `up`, `down`, `status` and `dispatch`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..api.stack import check_launcher
from ..errors import UsageError
from .common import EndpointOpt, JsonOpt, LauncherOpt, console, emit_json
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
    containers: Annotated[
        bool, typer.Option("--containers", help="Run the stack in containers (docker-compose).")
    ] = False,
) -> None:
    """Start the local stack (LocalStack + dispatcher) and provision blueprints on it."""
    from ..api.stack import up as bring_up

    dirs = blueprint_dirs
    if dirs is None:
        dirs = sorted(p.parent for p in Path("blueprints").glob("*/blueprint.yaml"))
    render = Renderer(to_err=True, quiet=as_json)
    doc = bring_up(
        dirs,
        launcher=check_launcher(launcher),
        endpoint_url=endpoint_url,
        containers=containers,
        on_progress=render,
    )
    print_status(doc, as_json)
    if not as_json:  # the lab members' way in (issue 8)
        console.print("web client: `ncaas-dev web` serves it and prints a sign-in URL")
        console.print(
            "[dim]the local S3 keeps nothing across `ncaas-dev down` (LocalStack's community "
            "edition); results fetched by `run` or `results` stay on disk[/dim]"
        )


def down(
    endpoint_url: EndpointOpt = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Stop even while jobs are unfinished.")
    ] = False,
) -> None:
    """Stop what `up` started (the stack in containers, or the command server, the dispatcher,
    the EC2 stand-in, then LocalStack). The local S3 goes with it: say what that drops."""
    import sys

    from ..api.stack import down as stop
    from ..api.stack import local_contents

    held = local_contents(endpoint_url=endpoint_url)
    if held is not None:
        unfinished = held["unfinished_jobs"]
        console.print(
            f"the local S3 at {held['endpoint']} keeps nothing across `down`: dropping "
            f"{held['objects']} object(s), {_size(held['bytes'])}, and {len(unfinished)} "
            "unfinished job(s); results fetched by `run` or `results` stay on disk"
        )
        if unfinished and not yes:
            listed = ", ".join(unfinished[:3]) + (" ..." if len(unfinished) > 3 else "")
            if not sys.stdin.isatty():
                raise UsageError(
                    f"{len(unfinished)} job(s) not finished ({listed}); `down` would stop "
                    "them and drop their data",
                    hint="wait for them (`ncaas-dev jobs ANALYSIS`), or run `ncaas-dev down "
                    "--yes` to stop anyway",
                )
            typer.confirm(f"stop {len(unfinished)} unfinished job(s) ({listed})?", abort=True)

    for name, stopped in stop(endpoint_url=endpoint_url).items():
        console.print(f"{name}: {'stopped' if stopped else 'was not running'}")


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} bytes"
    size = float(count)
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024 or unit == "GiB":
            break
    return f"{size:.1f} {unit}"


def print_status(doc: StackStatus, as_json: bool) -> None:
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
    from ..api.stack import status as stack_status

    print_status(stack_status(endpoint_url=endpoint_url), as_json)


def dispatch(
    launcher: LauncherOpt = "docker",
    endpoint_url: EndpointOpt = None,
) -> None:
    """Run the dispatcher loop in the foreground (`up` starts it in the background)."""
    import logging

    from ..api.stack import dispatch as serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s dispatcher %(message)s")
    serve(check_launcher(launcher), endpoint_url=endpoint_url)
