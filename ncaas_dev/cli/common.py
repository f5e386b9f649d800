"""What every command shares: the consoles, the common options and JSON output."""

from __future__ import annotations

import json
import os
import sys
from contextlib import nullcontext
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from ..blueprint import LoadedBlueprint
    from ..settings import Settings

console = Console()
err = Console(stderr=True)

EndpointOpt = Annotated[
    str | None,
    typer.Option(
        "--endpoint-url", help="S3/SQS endpoint (default: $AWS_ENDPOINT_URL or LocalStack)"
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
CloudOpt = Annotated[
    bool, typer.Option("--cloud", help="Real AWS (standard credential chain), not LocalStack.")
]
GroupOpt = Annotated[str | None, typer.Option("--group", "-g", help="Group (default: the first).")]
LauncherOpt = Annotated[
    str, typer.Option("--launcher", help="docker (local containers) or ec2 (the cloud path).")
]


def emit_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")


def target_settings(
    loaded: LoadedBlueprint, endpoint_url: str | None, cloud: bool, quiet: bool
) -> Settings:
    """Where `bake` and `deploy` work: with --cloud, real AWS in the blueprint's region (settings
    that only make sense against LocalStack are refused); else LocalStack, started if need be."""
    from dataclasses import replace

    from ..settings import Settings, check_cloud_environment
    from ..stack import start_localstack

    if cloud:
        check_cloud_environment(os.environ, endpoint_url)
        return replace(Settings.from_env(cloud=True), region=loaded.blueprint.cloud.region)
    settings = Settings.from_env(endpoint_url=endpoint_url)
    with err.status("starting LocalStack") if not quiet else nullcontext():
        start_localstack(settings)
    return settings
