"""`ncaas-dev deploy`: the analysis's stack (bucket, group access, dispatcher, instance role)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .common import CloudOpt, EndpointOpt, JsonOpt, console, emit_json, err, escape, print_table

if TYPE_CHECKING:
    from ..api.cloud import DeployResult
    from ..api.progress import Progress

_STYLE = {"COMPLETE": "green", "FAILED": "red", "PROGRESS": "yellow"}


def _event_line(event: dict[str, Any]) -> str:
    status = str(event.get("ResourceStatus", ""))
    style = next((v for k, v in _STYLE.items() if status.endswith(k)), "white")
    reason = event.get("ResourceStatusReason") or ""
    line = (
        f"[{style}]{escape(status):<20}[/{style}] {escape(str(event.get('LogicalResourceId')))} "
        f"[dim]{escape(str(event.get('ResourceType')))}[/dim]"
    )
    return line + (f" [dim]{escape(reason[:120])}[/dim]" if reason else "")


def _summary(result: DeployResult, where: str, dispatcher_running: bool) -> None:
    from rich.table import Table

    style = "green" if not result.missing else "yellow"
    console.print(
        f"[{style}]{result.action}[/{style}] stack {result.stack_name} in {where}: "
        f"{result.status} ({result.seconds:.1f} s)"
    )
    table = Table(box=None)
    for key in ("resource", "type", "name", "really there"):
        table.add_column(key, no_wrap=True)  # ids to copy: kept whole (print_table)
    table.add_column("detail")
    for check in result.checks:
        mark = "[green]yes[/green]" if check.present else "[red]NO[/red]"
        table.add_row(
            escape(check.logical_id),
            escape(check.kind),
            escape(check.name),
            mark,
            escape(check.detail),
        )
    print_table(table)
    console.print(
        f"  bucket     s3://{result.outputs.get('BucketName', '?')} "
        f"({'in the stack' if result.bucket_in_stack else 'made outside the stack'})"
    )
    console.print(f"  runners    instance profile {result.outputs.get('InstanceProfileName')}")
    console.print(f"  dispatcher {result.dispatcher}")
    if client_id := result.outputs.get("CognitoClientId"):  # the web client's sign-in
        console.print(f"  web        ncaas-dev web --cloud --cognito-client-id {client_id}")
    if result.local:
        console.print(
            "  [dim]left out on LocalStack: the Lambda dispatcher, its log group, permissions "
            "and sweep rule (LocalStack cannot run Lambda here; see docs/deploy.md)[/dim]"
        )
        if not dispatcher_running:
            console.print(
                "  [yellow]the local dispatcher is not running[/yellow]: start it with "
                "`ncaas-dev up` so submissions are served"
            )
    if result.package:
        cached = "cached" if not result.package["built"] else "built"
        console.print(f"  code       s3://.../{result.package['key']} ({cached})")
    for check in result.missing:
        console.print(
            f"[yellow]missing[/yellow]: {check.logical_id} ({check.kind}) was reported created "
            f"but is not there: {escape(check.detail)}"
        )


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""

    @app.command()
    def deploy(
        blueprint_dir: Annotated[Path, typer.Argument(help="Blueprint folder.")],
        cloud: CloudOpt = False,
        endpoint_url: EndpointOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Create or update the analysis's stack (bucket, group access, dispatcher, instance
        role) with CloudFormation: LocalStack unless --cloud."""
        from ..api.cloud import deploy_report
        from ..api.context import Context
        from ..api.project import load_blueprint

        loaded = load_blueprint(blueprint_dir)
        if cloud:
            where = f"AWS {loaded.blueprint.cloud.region}"
        else:
            where = f"LocalStack ({Context.create(endpoint_url).settings.endpoint_url})"
        if as_json:
            result = deploy_report(loaded, cloud, endpoint_url=endpoint_url)
            emit_json(result.as_json())
        else:
            with err.status(f"deploying {loaded.blueprint.analysis} to {where}") as status:

                def show(event: Progress) -> None:
                    if event.kind == "resource":
                        err.print(_event_line(dict(event.detail)))
                        status.update(f"deploying: {escape(event.message)}")
                    elif event.kind in ("step", "line"):
                        status.update(escape(event.message[:100]))

                result = deploy_report(loaded, cloud, endpoint_url=endpoint_url, on_progress=show)
            from ..api.stack import dispatcher_running

            running = dispatcher_running()
            _summary(result, where, running)
        if result.missing:
            raise typer.Exit(1)
