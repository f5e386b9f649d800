"""Turning the API's progress events into terminal output."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .common import data_line, err, escape

if TYPE_CHECKING:
    from ..api.progress import Progress


def event_line(event: Progress) -> tuple[str, str] | None:
    """A job's dispatcher-log line or analysis-output line as the commands print it: its
    markup (for a terminal) and its plain text (for a pipe)."""
    if event.kind == "event":
        return log_line(event.time or "", event.message)
    if event.kind == "log":
        return output_line(event.dataset or "", event.message)
    return None


def log_line(time: str, message: str) -> tuple[str, str]:
    return f"[dim]{time}[/dim] {escape(message)}", f"{time} {message}"


def output_line(dataset: str, line: str) -> tuple[str, str]:
    return f"[cyan]{escape(dataset)}[/cyan] | {escape(line)}", f"{dataset} | {line}"


def show_event(event: Progress, to_err: bool = False) -> None:
    line = event_line(event)
    if line is not None:
        data_line(*line, to_err=to_err)


class Renderer:
    """``on_progress`` for a command: job lines on stdout (stderr if ``to_err``), whole (see
    ``data_line``); phases as dim lines (with a transfer bar for a step of known size) on
    stderr; nothing at all when ``quiet``."""

    def __init__(self, to_err: bool = False, quiet: bool = False) -> None:
        self.to_err = to_err
        self.quiet = quiet
        self._bar: Any = None
        self._task: Any = None

    def __call__(self, event: Progress) -> None:
        if self.quiet:
            return
        line = event_line(event)
        if line is not None:
            data_line(*line, to_err=self.to_err)
        elif event.kind == "step":
            self.close()
            if event.total:
                self._open_bar(event.message, event.total)
            else:
                data_line(f"[dim]{escape(event.message)}[/dim]", event.message, to_err=True)
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
