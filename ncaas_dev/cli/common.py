"""What every command shares: the consoles, the common options and JSON output.

Importing this module (and every command module) costs Typer only: Rich, pydantic, boto3 and
docker are imported inside the commands that use them, so `--help` and `status` start fast.
"""

from __future__ import annotations

import json
import re
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


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
        "--launcher",
        help="docker (local containers), ec2 (the cloud path), slurm (a cluster) or batch "
        "(AWS Batch).",
    ),
]


# CSI sequences (colours, cursor moves), OSC sequences (titles, links) and two-byte escapes.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[=>@-Z\\-_]")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def piped(to_err: bool = False) -> bool:
    """Whether the stream is not a terminal (a pipe, a file): it then gets plain, whole lines."""
    return not (err if to_err else console).is_terminal


def data_line(markup: str, plain: str, to_err: bool = False) -> None:
    """A line of data (a log line, a job's name) is never wrapped or cut: a pipe gets ``plain``
    as it is, without escape codes (scripts and `awk` read it); a terminal gets ``markup``
    soft-wrapped, so the terminal folds a long line and a copy gives it back whole."""
    target = err if to_err else console
    if not target.is_terminal:
        target.file.write(strip_ansi(plain) + "\n")
        target.file.flush()
        return
    target.print(markup, soft_wrap=True, highlight=False)


def print_table(table: Table, to_err: bool = False) -> None:
    """A table whose ``no_wrap`` columns (its keys: a job's name, a resource's id) stay whole:
    a pipe gets the table at its natural width without colour; a terminal gets it at its own
    width, the key columns as wide as their longest cell and the others folded, never cut."""
    from rich.console import Console
    from rich.measure import Measurement
    from rich.text import Text

    target = err if to_err else console
    for column in table.columns:
        if column.no_wrap:
            cells = [Text.from_markup(c) if isinstance(c, str) else c for c in column.cells]
            longest = max((c.cell_len for c in cells if isinstance(c, Text)), default=0)
            column.min_width = max(column.min_width or 0, longest, len(str(column.header)))
        else:
            column.overflow = "fold"
    measured = Measurement.get(target, target.options.update_width(1 << 16), table)
    if target.is_terminal:
        if measured.minimum <= target.width:
            target.print(table)
            return
        # Key columns wider than the terminal: the terminal folds the lines, nothing is cut.
        wide = Console(file=target.file, width=measured.minimum, force_terminal=True)
        wide.print(table)
        return
    plain = Console(file=target.file, width=max(measured.maximum, 20), color_system=None)
    plain.print(table)


def emit_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
