"""`ncaas-dev bake`: the analysis image into an AMI with Packer, the AMI id into the blueprint."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .common import CloudOpt, EndpointOpt, JsonOpt, console, emit_json, err, escape

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from ..api.progress import Progress as ProgressEvent


class RichReporter:
    """One progress row per step: a bar when the size is known (docker save), else a spinner
    with the step's latest output line."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID | None = None
        self.title = ""
        self.started = time.monotonic()

    def _finish(self) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
            seconds = time.monotonic() - self.started
            self.progress.console.print(
                f"[green]✓[/green] {escape(self.title)} ({seconds:.1f} s)", highlight=False
            )

    def step(self, title: str, total: int | None = None) -> None:
        self._finish()
        self.title, self.started = title, time.monotonic()
        self.task = self.progress.add_task(escape(title), total=total, size="")

    def advance(self, amount: int) -> None:
        if self.task is not None:
            self.progress.advance(self.task, amount)
            task = next(t for t in self.progress.tasks if t.id == self.task)
            size = f"{task.completed / 1e6:,.0f} / {(task.total or 0) / 1e6:,.0f} MB"
            self.progress.update(self.task, size=size)

    def line(self, text: str) -> None:
        if self.task is not None:
            detail = escape(text.strip()[:90])
            self.progress.update(self.task, description=f"{escape(self.title)} [dim]{detail}[/dim]")

    def close(self) -> None:
        self._finish()
        self.task = None

    def on_progress(self, event: ProgressEvent) -> None:
        """The API's progress events, as the bake's reporter calls."""
        if event.kind == "step":
            self.step(event.message, event.total)
        elif event.kind == "advance":
            self.advance(event.amount)
        elif event.kind == "line":
            self.line(event.message)


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""

    @app.command()
    def bake(
        blueprint_dir: Annotated[Path, typer.Argument(help="Blueprint folder.")],
        cloud: CloudOpt = False,
        endpoint_url: EndpointOpt = None,
        force: Annotated[
            bool, typer.Option("--force", help="Bake even if the blueprint's AMI is up to date.")
        ] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Bake the analysis into an AMI (LocalStack's EC2 unless --cloud); record it in the
        blueprint as cloud.ami."""
        from ..api.cloud import bake_report
        from ..api.context import Context
        from ..api.project import load_blueprint

        loaded = load_blueprint(blueprint_dir)
        if as_json:
            result = bake_report(loaded, cloud, force=force, endpoint_url=endpoint_url)
            emit_json(result.as_json())
            return
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[size]}"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        )
        with progress:
            reporter = RichReporter(progress)
            try:
                result = bake_report(
                    loaded,
                    cloud,
                    force=force,
                    endpoint_url=endpoint_url,
                    on_progress=reporter.on_progress,
                )
            finally:
                reporter.close()
        settings = Context.create(endpoint_url, cloud=cloud).settings
        where = "AWS" if cloud else f"LocalStack ({settings.endpoint_url})"
        if not result.baked:
            say(
                f"[green]up to date[/green]: {result.ami} in {where}, region {result.region} "
                f"(bake key {result.bake_key[:16]}, {result.seconds:.1f} s); --force bakes anyway"
            )
            return
        say(f"[green]baked[/green] {result.ami} in {where}, region {result.region}")
        say(f"  image     {loaded.blueprint.image_tag} {result.image_id}")
        say(f"  bake key  {result.bake_key}")
        say(f"  source    {escape(result.source_ami)}")
        if result.proof:
            image = result.proof.get("image", {})
            say(
                f"  proof     {result.proof['on']}: ncaas-dev {result.proof.get('ncaas_version')} "
                f"(Python {result.proof.get('python')}) in /opt/ncaas/venv, image id checked "
                f"({image.get('how')}), baked.json in place"
            )
        say(f"  recorded  cloud.ami in {result.blueprint}")
        say(f"  took      {result.seconds:.1f} s")


def say(text: str) -> None:
    # soft_wrap: one fact per line whatever the terminal's width (scripts grep them).
    console.print(text, soft_wrap=True, highlight=False)
