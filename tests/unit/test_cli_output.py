"""What the commands print into a pipe and into a terminal: data whole, never cut."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.table import Table

from ncaas_dev.cli import common

JOB = "job_20261202T120000Z-a-name-long-enough-that-an-80-column-table-cuts-it"
REASON = "input not found: labA/inputs/x.bin; upload it to s3://bucket/labA/inputs/x.bin first"


def test_strip_ansi_removes_colours_titles_and_links() -> None:
    text = "\x1b[91mred\x1b[0m \x1b]0;title\x07ok \x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ \x1b=k"
    assert common.strip_ansi(text) == "red ok link k"


def _table() -> Table:
    table = Table()
    for column in ("job", "state"):
        table.add_column(column, no_wrap=True)
    table.add_column("reason")
    table.add_row(JOB, "[red]rejected[/red]", REASON)
    return table


@pytest.fixture
def stdout(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """A pipe as stdout (not a terminal), 80 columns as Rich assumes for one."""
    buffer = io.StringIO()
    monkeypatch.setattr(common, "console", Console(file=buffer, width=80))
    return buffer


def test_a_piped_table_keeps_every_cell_whole(stdout: io.StringIO) -> None:
    common.print_table(_table())
    text = stdout.getvalue()
    assert JOB in text and REASON in text and "rejected" in text
    assert "\x1b" not in text and "…" not in text


def test_a_piped_data_line_is_plain_and_whole(stdout: io.StringIO) -> None:
    line = "x" * 300
    common.data_line(f"[cyan]rec.bin[/cyan] | {line}", f"rec.bin | \x1b[1m{line}\x1b[0m")
    assert stdout.getvalue() == f"rec.bin | {line}\n"


def test_in_a_narrow_terminal_key_columns_stay_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = io.StringIO()
    terminal = Console(file=buffer, width=60, force_terminal=True, color_system=None)
    monkeypatch.setattr(common, "console", terminal)
    common.print_table(_table())
    assert JOB in buffer.getvalue()  # the reason folds; the job's name is never cut
    assert "…" not in buffer.getvalue()
    buffer.truncate(0)
    common.data_line("y" * 200, "unused")
    assert "y" * 200 in buffer.getvalue()  # soft wrap: the terminal folds it, not Rich
