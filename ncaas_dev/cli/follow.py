"""Follow a job: state changes and new log lines as they reach S3 (``Job.watch``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .render import event_line

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
    from ..api.job import Job

    followed = Job(client, group, job)
    for event in followed.watch(logs=show_logs, dataset=dataset, interval=interval):
        line = event_line(event)
        if line is not None:
            say(line)
    return followed.status
