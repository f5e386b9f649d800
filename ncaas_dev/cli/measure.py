"""`ncaas-dev profile` (measure one run, recommend hardware) and `ncaas-dev shell` (the image
under a run's own contract): both call the Python API and only render."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import JobFailed
from .common import GroupOpt, JsonOpt, console, emit_json, err, escape

if TYPE_CHECKING:
    from ..api.profile import ProfileReport
    from ..api.progress import Progress

DataOpt = Annotated[Path, typer.Option("--data", help="Dataset file.")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="Config file.")]


def _mib(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**20:,.0f} MiB"


def _render(report: ProfileReport) -> None:
    mark = "[green]succeeded[/green]" if report.succeeded else "[red]FAILED[/red]"
    console.print(f"run        {mark}" + (f": {escape(report.reason)}" if report.reason else ""))
    console.print(f"peak mem   {_mib(report.peak_memory_bytes)} ({report.peak_memory_bytes} B)")
    console.print(f"cpu time   {report.cpu_seconds:.2f} s")
    console.print(f"wall time  {report.wall_seconds:.2f} s")
    console.print(f"output     {report.output_bytes:,} B")
    if report.gpu_memory_bytes is not None:
        console.print(f"gpu mem    {_mib(report.gpu_memory_bytes)}")
    console.print(f"headroom   {report.headroom:g}x")
    if report.recommended_instance_type:
        console.print(
            f"[bold]recommend  {report.recommended_instance_type}[/bold] "
            f"({report.recommended_vcpus} vCPUs, {_mib(report.recommended_memory_bytes)}, "
            f"${report.price_per_hour_usd}/h); resources.cpus {report.cpus_needed}, "
            f"resources.memory {_mib(report.memory_needed_bytes)}"
        )
        console.print(
            f"cost       ${report.cost_per_dataset_usd:.4f} per dataset, "
            f"${report.cost_per_100_datasets_usd:.2f} per 100 datasets"
        )
    console.print("why:")
    for line in report.reasoning:
        console.print(f"  - {escape(line)}", soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the commands to ``app``."""

    @app.command()
    def profile(
        blueprint_dir: Annotated[Path, typer.Argument(help="Blueprint folder.")],
        data: DataOpt,
        config: ConfigOpt = None,
        headroom: Annotated[
            float, typer.Option("--headroom", help="Memory and CPU margin over the measured.")
        ] = 1.5,
        write: Annotated[
            bool,
            typer.Option(
                "--write",
                help="Put resources.cpus, resources.memory, cloud.instance_type into "
                "blueprint.yaml (comments kept).",
            ),
        ] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Measure one run (CPU, peak memory, time) and recommend the cheapest instance type."""
        from ..api.profile import profile as run_profile

        def show(event: Progress) -> None:
            if event.kind == "log":
                err.print(f"[cyan]{escape(event.dataset or '')}[/cyan] | {escape(event.message)}")
            elif event.kind == "step":
                err.print(f"[dim]{escape(event.message)}[/dim]")

        report = run_profile(
            blueprint_dir,
            data,
            config,
            headroom=headroom,
            write=write,
            on_progress=None if as_json else show,
        )
        if as_json:
            emit_json(report.as_json())
        else:
            _render(report)
        if not report.succeeded:
            raise JobFailed(f"the profiled run failed: {report.reason}")

    @app.command()
    def shell(
        blueprint_dir: Annotated[Path, typer.Argument(help="Blueprint folder.")],
        data: Annotated[Path | None, typer.Option("--data", help="Dataset file.")] = None,
        config: ConfigOpt = None,
        out: Annotated[Path, typer.Option("--out", help="Folder mounted as /ncaas/output.")] = Path(
            "ncaas-shell-output"
        ),
        command: Annotated[
            str | None, typer.Option("--command", "-c", help="Run this (sh -c) instead.")
        ] = None,
        group: GroupOpt = None,
    ) -> None:
        """A shell in the analysis image with a run's mounts, environment, user, limits and
        network; output lands in --out. The container is removed on exit or Ctrl-C."""
        from ..api.shell import shell as run_shell

        # A run's output folder starts empty; this one is the user's and is never emptied for
        # them, so what earlier shells left is said, not silently mixed in.
        left = sum(1 for p in out.rglob("*") if p.is_file()) if out.is_dir() else 0
        if left:
            err.print(
                f"[yellow]note:[/yellow] {escape(str(out))} already holds {left} file(s) from "
                "earlier shells; the analysis sees them in /ncaas/output (a run starts empty: "
                "give a new --out, or empty this one)",
                soft_wrap=True,
            )
        code = run_shell(blueprint_dir, data, config, out, command=command, group=group)
        raise typer.Exit(code)
