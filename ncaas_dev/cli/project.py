"""The blueprint's own commands: `init` (scaffold one) and `build` (its image)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from .common import JsonOpt, console, emit_json, err, escape


def init(name: Annotated[Path, typer.Argument(help="Folder of the new blueprint.")]) -> None:
    """Scaffold a blueprint folder that runs as it is."""
    from ..scaffold import scaffold

    folder = scaffold(name)
    console.print(f"created {folder}/ (blueprint.yaml, Dockerfile, main.py, README.md)")
    console.print(f"try it: echo hello > sample.txt && ncaas-dev run {folder} --data sample.txt")


def build(
    blueprint_dir: Annotated[Path, typer.Argument(help="Blueprint folder.")],
    as_json: JsonOpt = False,
) -> None:
    """Build the analysis image (cached by Docker's layer cache)."""
    from ..blueprint import load_blueprint
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
