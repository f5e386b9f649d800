"""Following a dataset's log as it reaches S3: the one implementation behind ``Job.watch``
(and so ``ncaas-dev logs -f`` and ``run``) and the web client's log stream.

The runner rewrites ``logs/{dataset}.log`` as it grows; a reader asks for the bytes after
what it has (one ranged GET). Only whole lines are handed out until the job has ended (then
the rest too), so a line cut by an upload is never shown in two pieces. Line-level rendering
(carriage returns, progress bars) belongs to whoever shows the lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..client import AnalysisClient


@dataclass
class LogTail:
    """One dataset's log, read from ``offset`` (bytes) on; ``offset`` only moves past lines
    already handed out, so a consumer may resume from it (the web's Last-Event-ID)."""

    client: AnalysisClient
    group: str
    job: str
    dataset: str
    offset: int = 0

    def poll(self, ended: bool = False) -> list[str]:
        """The new whole lines (every remaining byte as well if ``ended``: read whether the
        job ended *before* calling, so nothing written after that read is missed)."""
        chunk = self.client.log_since(self.group, self.job, self.dataset, self.offset)
        whole = chunk if ended else chunk[: chunk.rfind(b"\n") + 1]
        if not whole:
            return []
        self.offset += len(whole)
        return whole.decode("utf-8", "replace").removesuffix("\n").split("\n")
