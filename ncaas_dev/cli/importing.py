"""`ncaas-dev import`: a NeuroCAAS stack_config_template.json becomes a blueprint folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import JsonOpt, console, emit_json, escape


def import_(
    template: Annotated[
        Path,
        typer.Argument(metavar="STACK_CONFIG_JSON", help="NeuroCAAS stack_config_template.json."),
    ],
    out: Annotated[
        Path | None, typer.Option("--out", help="Blueprint folder to write (default ./ANALYSIS).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Turn a NeuroCAAS blueprint into an ncaas-dev blueprint folder; print what mapped where."""
    from ..api.tools import import_neurocaas

    folder, imported = import_neurocaas(template, out)
    if as_json:
        rows = [vars(r) for r in imported.rows]
        emit_json({"folder": str(folder), "analysis": imported.analysis, "mapping": rows})
        return
    from rich.table import Table

    table = Table("NeuroCAAS field", "value", "blueprint", "note", title="what mapped where")
    for row in imported.rows:
        target = escape(row.target) if row.target else "[yellow](not carried over)[/yellow]"
        table.add_row(escape(row.source), escape(row.value[:60]), target, escape(row.note))
    console.print(table)
    console.print(f"wrote {folder}/ (blueprint.yaml, Dockerfile, README.md)")
    console.print("next: move the analysis from the AMI into the Dockerfile (see its README.md)")


def register(app: typer.Typer) -> None:
    app.command("import")(import_)
