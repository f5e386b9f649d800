"""What every command shares: the consoles, the common options and JSON output."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console

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
