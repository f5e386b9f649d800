"""The blueprint's own commands: `init` (scaffold one) and `build` (its image)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .common import JsonOpt, console, emit_json, err, escape

if TYPE_CHECKING:
    from ..api.progress import Progress


def init(name: Annotated[Path, typer.Argument(help="Folder of the new blueprint.")]) -> None:
    """Scaffold a blueprint folder that runs as it is."""
    from ..api.project import load_blueprint
    from ..api.tools import init as scaffold

    folder = scaffold(name)
    console.print(f"created {folder}/ (blueprint.yaml, Dockerfile, main.py, README.md)")
    analysis = load_blueprint(folder).blueprint.analysis
    if analysis != folder.name:  # S3 bucket names: lowercase letters, digits and hyphens
        console.print(
            f"the analysis and its S3 bucket are named [bold]{analysis}[/bold], not "
            f"{escape(folder.name)}: bucket names take lowercase letters, digits and hyphens "
            "only (change `analysis:` in blueprint.yaml to choose another)"
        )
    else:
        console.print(f"the analysis and its S3 bucket are named [bold]{analysis}[/bold]")
    console.print(f"try it: echo hello > sample.txt && ncaas-dev run {folder} --data sample.txt")


def build(
    blueprint_dir: Annotated[Path, typer.Argument(help="Blueprint folder.")],
    as_json: JsonOpt = False,
) -> None:
    """Build the analysis image (cached by Docker's layer cache)."""
    from ..api.project import build as build_image
    from ..api.project import load_blueprint

    loaded = load_blueprint(blueprint_dir)
    started = time.monotonic()
    with err.status(f"building {loaded.blueprint.image_tag}") as spinner:

        def show(event: Progress) -> None:
            if event.kind == "line":
                spinner.update(escape(event.message[:100]))

        image_id = build_image(loaded, on_progress=show)
    if as_json:
        emit_json({"image": loaded.blueprint.image_tag, "image_id": image_id})
    else:
        console.print(
            f"built {loaded.blueprint.image_tag} ({image_id[:19]}) "
            f"in {time.monotonic() - started:.1f} s"
        )
