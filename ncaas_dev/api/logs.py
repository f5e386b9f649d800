"""An analysis's log as a terminal shows it: tqdm's CR-rewritten bar as its latest state.

logs/{dataset}.log keeps the raw bytes; whoever shows them to a person (``Job.logs``,
``Job.watch``, the CLI, the web client) renders them through here.
"""

from __future__ import annotations

import codecs

from ..logtext import LineRenderer, progress, render_lines

__all__ = ["LogScreen", "log_progress", "render_log"]


def render_log(data: bytes) -> list[str]:
    """The whole log, one entry per line as a terminal leaves it."""
    return render_lines(data.decode("utf-8", "replace"))


def log_progress(line: str) -> float | None:
    """The fraction done (0-1) that an output line shows (tqdm or ``NN%``), else None."""
    return progress(line)


class LogScreen:
    """A log as it arrives: bytes in (UTF-8 may be cut anywhere), completed lines out."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._renderer = LineRenderer()

    def feed(self, chunk: bytes) -> list[str]:
        return self._renderer.feed(self._decoder.decode(chunk))

    @property
    def current(self) -> str:
        """The line being written (a progress bar's latest redraw)."""
        return self._renderer.current

    def close(self) -> list[str]:
        """The end of the log: what was left undecoded or unterminated."""
        return self._renderer.feed(self._decoder.decode(b"", final=True)) + self._renderer.close()
