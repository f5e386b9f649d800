"""`ncaas-dev cancel`: cancel a job (or some of its datasets) by the same file a user writes."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import JobFailed
from .common import EndpointOpt, GroupOpt, JsonOpt, console, emit_json, escape


def cancel(
    analysis: Annotated[str, typer.Argument(help="Blueprint folder or analysis name.")],
    job: Annotated[str, typer.Argument(help="Job folder name, e.g. job_20261124T203000Z.")],
    group: GroupOpt = None,
    dataset: Annotated[
        list[str] | None,
        typer.Option("--dataset", "-d", help="Only this dataset (repeatable; default: all)."),
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the cancellation to take effect.")
    ] = 60,
    endpoint_url: EndpointOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a cancel request for JOB and wait until its datasets are cancelled (exit 0)."""
    from ..api.jobs import job as find_job

    found = find_job(analysis, job, group, endpoint_url=endpoint_url)
    # What is still to end now: a dataset that already ended is neither cancelled nor a failure.
    known = found.datasets  # an unknown --dataset is refused by cancel() (exit 2)
    wanted = [n for n in dataset or known if n in known and not known[n].state.terminal]
    found.cancel(dataset or None, timeout=timeout)
    states = {name: found.datasets[name].state.value for name in wanted}
    if as_json:
        doc = found.status.model_dump(mode="json", exclude={"events"})
        emit_json(doc | {"cancelled": [n for n, s in states.items() if s == "cancelled"]})
    else:
        for name, state in states.items():
            reason = found.datasets[name].reason or ""
            console.print(f"{escape(name)}: {state}" + (f" ({escape(reason)})" if reason else ""))
        console.print(f"{found.name}: {found.state.value}")
    ended = {n: s for n, s in states.items() if s != "cancelled"}
    if ended:  # they finished on their own before the request reached them
        listed = ", ".join(f"{n} {s}" for n, s in ended.items())
        raise JobFailed(f"not cancelled: {listed} before the cancel request took effect")


def register(app: typer.Typer) -> None:
    app.command()(cancel)
