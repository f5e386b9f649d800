"""Follow a job: state changes and new log lines as they reach S3."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..client import AnalysisClient
    from ..status import JobStatus

Printer = Callable[[str], None]


def follow_job(
    client: AnalysisClient,
    group: str,
    job: str,
    say: Printer,
    show_logs: bool = True,
    interval: float = 0.05,
    dataset: str | None = None,
) -> JobStatus:
    """Print what changes until end.txt exists; return the final status."""
    offsets: dict[str, int] = {}
    partial: dict[str, str] = {}
    seen_events = 0
    while True:
        done = client.finished(group, job)  # read before status: end.txt is written last
        status = client.status(group, job)
        for event in status.events[seen_events:]:
            say(f"[dim]{event.time}[/dim] {event.message}")
        seen_events = len(status.events)
        for name in status.datasets:
            if dataset and name != dataset:
                continue
            if show_logs:
                chunk = client.log_since(group, job, name, offsets.get(name, 0))
                if chunk:
                    offsets[name] = offsets.get(name, 0) + len(chunk)
                    text = partial.get(name, "") + chunk.decode("utf-8", "replace")
                    *lines, partial[name] = text.split("\n")
                    for line in lines:
                        say(f"[cyan]{name}[/cyan] | {line}")
        if done:
            for name, rest in partial.items():
                if rest:
                    say(f"[cyan]{name}[/cyan] | {rest}")
            return client.status(group, job)
        time.sleep(interval)
