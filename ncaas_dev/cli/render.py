"""Turning the API's progress events into terminal output."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .common import err, escape

if TYPE_CHECKING:
    from ..api.progress import Progress

Printer = Callable[[str], None]


def event_line(event: Progress) -> str | None:
    """A job's dispatcher-log line or analysis-output line as the commands print it."""
    if event.kind == "event":
        return f"[dim]{event.time}[/dim] {escape(event.message)}"
    if event.kind == "log":
        return f"[cyan]{escape(event.dataset or '')}[/cyan] | {escape(event.message)}"
    return None


class Renderer:
    """``on_progress`` for a command: job lines through ``say``; phases as dim lines (with a
    transfer bar for a step of known size) on stderr; nothing at all when ``quiet``."""

    def __init__(self, say: Printer, quiet: bool = False) -> None:
        self.say = say
        self.quiet = quiet
        self._bar: Any = None
        self._task: Any = None

    def __call__(self, event: Progress) -> None:
        if self.quiet:
            return
        line = event_line(event)
        if line is not None:
            self.say(line)
        elif event.kind == "step":
            self.close()
            if event.total:
                self._open_bar(event.message, event.total)
            else:
                err.print(f"[dim]{escape(event.message)}[/dim]", highlight=False)
        elif event.kind == "advance" and self._bar is not None:
            self._bar.advance(self._task, event.amount)

    def _open_bar(self, title: str, total: int) -> None:
        from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

        self._bar = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=err,
        )
        self._bar.start()
        self._task = self._bar.add_task(escape(title), total=total)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
