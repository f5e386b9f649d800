"""``ncaas-dev doctor``: check Docker, the local stack, Packer, credentials and the AMI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import (
    CloudOpt,
    EndpointOpt,
    JsonOpt,
    LauncherOpt,
    console,
    emit_json,
    escape,
)


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

    from ..api.tools import doctor as run_checks

    styles = {"ok": "green", "warn": "yellow", "fail": "red"}
    checks = run_checks(blueprint_dir, cloud=cloud, launcher=launcher, endpoint_url=endpoint_url)
    failed = any(c.level == "fail" for c in checks)
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
