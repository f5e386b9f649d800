"""``ncaas-dev doctor``: check Docker, the local stack, Packer, credentials and the AMI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..api.stack import check_launcher
from .common import (
    CloudOpt,
    EndpointOpt,
    JsonOpt,
    LauncherOpt,
    console,
    emit_json,
    escape,
)
from .context import Context


def doctor(
    blueprint_dir: Annotated[
        Path | None, typer.Argument(help="Blueprint whose AMI to check as well.")
    ] = None,
    cloud: CloudOpt = False,
    launcher: LauncherOpt = "docker",
    endpoint_url: EndpointOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check what ncaas-dev needs and say how to fix what is missing (exit 1 on a failure)."""
    from rich.table import Table

    from ..blueprint import load_blueprint
    from ..doctor import Level, diagnose

    styles = {Level.OK: "green", Level.WARN: "yellow", Level.FAIL: "red"}
    loaded = load_blueprint(blueprint_dir) if blueprint_dir else None
    ctx = Context.create(endpoint_url, cloud=cloud)
    checks = diagnose(ctx.settings, loaded)
    if check_launcher(launcher) == "slurm":
        from ..slurmcheck import slurm_checks

        checks += slurm_checks()
    failed = any(c.level == Level.FAIL for c in checks)
    if as_json:
        emit_json({"ok": not failed, "checks": [c.as_dict() for c in checks]})
    else:
        table = Table(show_header=True, header_style="bold")
        for column in ("check", "", "detail", "fix"):
            table.add_column(column)
        for c in checks:
            style = styles[c.level]
            table.add_row(
                c.name, f"[{style}]{c.level.value}[/{style}]", escape(c.detail), escape(c.fix or "")
            )
        console.print(table)
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(doctor)
