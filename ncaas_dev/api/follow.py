"""Following a dataset's log as it reaches S3: the one implementation behind ``Job.watch``
(and so ``ncaas-dev logs -f`` and ``run``) and the web client's log stream.

The runner rewrites ``logs/{dataset}.log`` as it grows; a reader asks for the bytes after
what it has (one ranged GET). Only whole lines are handed out until the job has ended (then
the rest too), so a line cut by an upload is never shown in two pieces. Lines come out as a
terminal shows them (``api/logs.LogScreen``: a tqdm bar's CR redraws as its latest state), and
the line still being drawn is ``current``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .logs import LogScreen

if TYPE_CHECKING:
    from ..client import AnalysisClient


@dataclass
class LogTail:
    """One dataset's log, read from ``offset`` (bytes) on. ``offset`` only moves just past
    the last newline handed out, so a consumer may resume from it (the web's Last-Event-ID):
    the unfinished line is read again, never the whole log."""

    client: AnalysisClient
    group: str
    job: str
    dataset: str
    offset: int = 0
    _read: int = field(default=-1, repr=False)
    _screen: LogScreen = field(default_factory=LogScreen, repr=False)

    def poll(self, ended: bool = False) -> list[str]:
        """The newly completed lines (the unfinished one as well if ``ended``: read whether
        the job ended *before* calling, so nothing written after that read is missed)."""
        if self._read < 0:
            self._read = self.offset
        chunk = self.client.log_since(self.group, self.job, self.dataset, self._read)
        self._read += len(chunk)
        if b"\n" in chunk:
            self.offset = self._read - len(chunk) + chunk.rfind(b"\n") + 1
        lines = self._screen.feed(chunk)
        if ended:
            lines += self._screen.close()
            self.offset = self._read
        return lines

    @property
    def current(self) -> str:
        """The line being drawn (a progress bar's latest redraw), not yet completed."""
        return self._screen.current
