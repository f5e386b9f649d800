"""The job commands: `run` (the whole loop), `submit`, `jobs`, `logs` and `results`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..api.stack import check_launcher
from ..errors import JobFailed
from .common import (
    EndpointOpt,
    GroupOpt,
    JsonOpt,
    LauncherOpt,
    data_line,
    emit_json,
    escape,
    print_table,
)
from .render import Renderer, log_line, output_line, show_event

if TYPE_CHECKING:
    from ..api.progress import OnProgress, Progress
    from ..api.records import JobStatus


def _job_doc(status: JobStatus, results: Path | None = None) -> dict[str, Any]:
    doc = status.model_dump(mode="json", exclude={"events"})
    if results is not None:
        doc["results_dir"] = str(results)
    return doc


def _summary(status: JobStatus, results: Path | None) -> None:
    from rich.table import Table

    from ..api.records import State

    table = Table(title=f"{status.job}: {status.state.value}", title_justify="left")
    table.add_column("dataset", no_wrap=True)
    table.add_column("state", no_wrap=True)
    for column in ("exit", "reason"):
        table.add_column(column)
    for name, ds in status.datasets.items():
        color = "green" if ds.state == State.SUCCEEDED else "red"
        table.add_row(
            name,
            f"[{color}]{ds.state.value}[/{color}]",
            "" if ds.exit_code is None else str(ds.exit_code),
            escape(ds.reason or ""),
        )
    print_table(table)
    if results is not None:
        data_line(f"results: {escape(str(results))}", f"results: {results}")


def _finish(status: JobStatus) -> None:
    from ..api.records import State

    if status.state != State.SUCCEEDED:
        raise JobFailed(f"job {status.job} {status.state.value}: {status.reason}")


def run(
    blueprint_dir: Annotated[Path, typer.Argument(help="Blueprint folder.")],
    data: Annotated[
        list[Path], typer.Option("--data", help="Dataset file or folder (repeatable).")
    ],
    config: Annotated[Path | None, typer.Option("--config", help="Config file.")] = None,
    group: GroupOpt = None,
    out: Annotated[Path, typer.Option("--out", help="Where results go.")] = Path("ncaas-results"),
    launcher: LauncherOpt = "docker",
    endpoint_url: EndpointOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Build, start the local stack, upload, submit, follow, download: the whole job."""
    from ..api.jobs import run as run_job

    check_launcher(launcher)
    render = Renderer(to_err=as_json, quiet=as_json)
    try:
        job = run_job(
            blueprint_dir,
            data,
            config,
            group,
            out,
            launcher=launcher,
            endpoint_url=endpoint_url,
            on_progress=render,
        )
    finally:
        render.close()
    if as_json:
        emit_json(_job_doc(job.status, job.results_dir))
    else:
        _summary(job.status, job.results_dir)
    _finish(job.status)


def submit(
    analysis: Annotated[str, typer.Argument(help="Blueprint folder or analysis name.")],
    data: Annotated[list[str], typer.Option("--data", help="Local file or S3 key (repeatable).")],
    config: Annotated[str | None, typer.Option("--config", help="Local file or S3 key.")] = None,
    group: GroupOpt = None,
    timestamp: Annotated[str | None, typer.Option(help="Names the job folder.")] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the job; exit 1 unless it succeeds.")
    ] = False,
    endpoint_url: EndpointOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Upload files (or use keys already in S3) and write a submission; print the job."""
    from ..api.jobs import submit as submit_job

    render = Renderer(to_err=as_json, quiet=as_json)
    try:
        job = submit_job(
            analysis,
            data,
            config,
            group,
            timestamp=timestamp,
            endpoint_url=endpoint_url,
            on_progress=None if as_json else _quiet_steps(render),
        )
    finally:
        render.close()
    submission = job.status.submission
    if not wait:
        if as_json:
            emit_json({"submission": submission, "job": job.name, "group": job.group})
        else:
            data_line(
                f"submitted {escape(submission)} -> {job.name}",
                f"submitted {submission} -> {job.name}",
            )
        return
    data_line(
        f"submitted {escape(submission)} -> {job.name}",
        f"submitted {submission} -> {job.name}",
        to_err=as_json,
    )
    job.wait(on_progress=Renderer(to_err=as_json))
    if as_json:
        emit_json(_job_doc(job.status))
    else:
        _summary(job.status, None)
    _finish(job.status)


def _quiet_steps(render: Renderer) -> OnProgress:
    """Submit's own steps are said once it returns; transfers still get their bar."""

    def show(event: Progress) -> None:
        if event.kind != "step" or event.total:
            render(event)

    return show


def jobs(
    analysis: Annotated[str, typer.Argument(help="Blueprint folder or analysis name.")],
    group: GroupOpt = None,
    limit: Annotated[
        int | None, typer.Option("--limit", "-n", min=1, help="At most this many (a page).")
    ] = None,
    before: Annotated[
        str | None, typer.Option("--before", help="Only jobs older than this one (next page).")
    ] = None,
    endpoint_url: EndpointOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List a group's jobs and their states, newest first."""
    from ..api.jobs import jobs as list_jobs
    from ..api.jobs import not_submissions

    page = list_jobs(analysis, group, endpoint_url=endpoint_url, limit=limit, before=before)
    found = [j.status for j in page]
    # Files in submissions/ that start nothing (misnamed): said, or their writer waits forever.
    for reason in not_submissions(analysis, group, endpoint_url=endpoint_url):
        data_line(f"[yellow]note:[/yellow] {escape(reason)}", f"note: {reason}", to_err=True)
    if as_json:
        emit_json([_job_doc(s) for s in found])
        return
    from rich.table import Table

    table = Table()
    for column in ("job", "state", "datasets", "created"):
        table.add_column(column, no_wrap=True)
    table.add_column("reason")
    for s in found:
        table.add_row(s.job, s.state.value, str(len(s.datasets)), s.created, escape(s.reason or ""))
    print_table(table)


def logs(
    analysis: Annotated[str, typer.Argument(help="Blueprint folder or analysis name.")],
    job: Annotated[str, typer.Argument(help="Job folder name, e.g. job_20261124T203000Z.")],
    dataset: Annotated[str | None, typer.Option(help="Only this dataset.")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep following.")] = False,
    group: GroupOpt = None,
    endpoint_url: EndpointOpt = None,
) -> None:
    """Print a job's dispatcher log and analysis output (``-f`` follows until it ends)."""
    from ..api.jobs import job as find_job

    found = find_job(analysis, job, group, endpoint_url=endpoint_url)
    if follow:
        for event in found.watch(dataset=dataset):
            show_event(event)
        ending = f"{found.name}: {found.state.value}" + (
            f" ({found.reason})" if found.reason else ""
        )
        data_line(escape(ending), ending)
        return
    for logged in found.status.events:
        data_line(*log_line(logged.time, logged.message))
    for name in found.datasets:
        if dataset and name != dataset:
            continue
        for line in found.logs(name):
            data_line(*output_line(name, line))


def results(
    analysis: Annotated[str, typer.Argument(help="Blueprint folder or analysis name.")],
    job: Annotated[str, typer.Argument(help="Job folder name.")],
    group: GroupOpt = None,
    out: Annotated[Path, typer.Option("--out", help="Where results go.")] = Path("ncaas-results"),
    endpoint_url: EndpointOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Download a job folder into OUT/{job}/ and print its summary."""
    from ..api.jobs import job as find_job

    found = find_job(analysis, job, group, endpoint_url=endpoint_url)
    folder = found.download(out)
    if as_json:
        emit_json(_job_doc(found.status, folder))
    else:
        _summary(found.status, folder)
