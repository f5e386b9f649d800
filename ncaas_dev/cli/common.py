"""What every command shares: the consoles, the common options and JSON output.

Importing this module (and every command module) costs Typer only: Rich, pydantic, boto3 and
docker are imported inside the commands that use them, so `--help` and `status` start fast.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console


class _LazyConsole:
    """A Rich ``Console`` made on first use: importing Rich costs more than `--help` may."""

    def __init__(self, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def _real(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self._stderr)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real(), name)

    # Rich's Live enters its console with `with console:`, which looks these up on the type.
    def __enter__(self) -> Console:
        return self._real().__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._real().__exit__(*exc)


if TYPE_CHECKING:
    console: Console
    err: Console
else:
    console = _LazyConsole(stderr=False)
    err = _LazyConsole(stderr=True)


def escape(text: str) -> str:
    """Rich's markup escape, imported when first needed."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


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
    str,
    typer.Option(
        "--launcher", help="docker (local containers), ec2 (the cloud path) or slurm (a cluster)."
    ),
]


def emit_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
