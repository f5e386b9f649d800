"""Ship a container's output to S3 while it runs: a local file, re-uploaded when it grows.

S3 has no append, so the log object is rewritten each second while it changes; a watcher
sees new lines within about a second. Past 8 MiB the interval grows, so a chatty analysis
does not turn into a quadratic upload.
"""

from __future__ import annotations

import codecs
import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from ..errors import NcaasError
from ..logtext import LineRenderer, render_lines
from ..storage import Storage

log = logging.getLogger(__name__)

BIG_LOG = 8 * 1024**2


class LogShipper:
    def __init__(
        self,
        storage: Storage,
        bucket: str,
        key: str,
        path: Path,
        on_last_line: Callable[[str], None] | None = None,
        interval: float = 1.0,
        status_interval: float = 3.0,
    ) -> None:
        self.storage, self.bucket, self.key, self.path = storage, bucket, key, path
        self.on_last_line = on_last_line
        self.interval, self.status_interval = interval, status_interval
        self.last_line = ""
        self._shipped_size = -1
        self._reported_line = ""
        self._stop = threading.Event()
        path.touch()
        self._thread = threading.Thread(target=self._loop, name=f"logship:{key}", daemon=True)

    def consume(self, chunks: Iterable[bytes]) -> None:
        """Write the output to the local log, raw (blocking until the stream ends).

        The last line is the one a terminal would show: a tqdm bar's latest redraw, not a
        fragment of it (logtext renders CR rewrites).
        """
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        screen = LineRenderer()
        with self.path.open("ab") as log:
            for chunk in chunks:
                log.write(chunk)
                log.flush()
                screen.feed(decoder.decode(chunk))
                self.last_line = screen.latest
        screen.feed(decoder.decode(b"", final=True))
        screen.close()
        self.last_line = screen.latest

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop and ship the final log; never raises (the run's result matters more).

        The last line is not reported here: the runner's final status update carries it.
        """
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        try:
            self.ship(force=True)
        except NcaasError as e:
            log.error("final upload of %s failed: %s", self.key, e)

    def ship(self, force: bool = False) -> None:
        size = self.path.stat().st_size if self.path.exists() else 0
        if size == self._shipped_size and not force:
            return
        if size:
            self.storage.upload_file(self.path, self.bucket, self.key)
        else:
            self.storage.put_text(self.bucket, self.key, "")
        self._shipped_size = size

    def report(self) -> None:
        if self.on_last_line and self.last_line != self._reported_line:
            self._reported_line = self.last_line
            self.on_last_line(self.last_line)

    def _loop(self) -> None:
        last_report = time.monotonic()
        while not self._stop.wait(self.interval if self._shipped_size < BIG_LOG else 10.0):
            try:
                self.ship()
                if time.monotonic() - last_report >= self.status_interval:
                    self.report()
                    last_report = time.monotonic()
            except Exception:  # a failed upload must not kill the run; the next tick retries
                continue


def tail_lines(path: Path, count: int, max_bytes: int = 64 * 1024) -> list[str]:
    """The last ``count`` non-empty lines of a log (read from its last ``max_bytes``), CR
    rewrites rendered as a terminal shows them."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - max_bytes))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    lines = [line.strip()[:500] for line in render_lines(text) if line.strip()]
    return lines[-count:]
