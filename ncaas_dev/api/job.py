"""``Job``: one job folder of one analysis, as its status.json, logs and results describe it."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import JobTimeout, UsageError
from .logs import render_log
from .progress import OnProgress, Progress

if TYPE_CHECKING:
    from ..client import AnalysisClient
    from ..status import DatasetStatus, JobStatus, State


class Job:
    """A job, read from S3. Its attributes come from status.json, read when the ``Job`` was
    made and again by ``refresh()`` and ``wait()``; nothing here starts or changes the job.

    - ``name``: the job folder (``job_20261124T203000Z``); ``analysis``, ``group``;
    - ``state``: a ``State`` (a ``str``: ``"succeeded"``, ``"failed"``, ...);
    - ``reason``: why it did not succeed, in plain words (None when it did);
    - ``datasets``: per dataset name, its ``DatasetStatus`` (state, exit_code, reason, times);
    - ``cost_usd``: what its runs cost at the blueprint's instance price (None until known);
    - ``status``: the whole status.json as a ``JobStatus``;
    - ``results_dir``: where ``download`` (or ``run(out=...)``) put the job folder, if it did.
    """

    def __init__(self, client: AnalysisClient, group: str, name: str) -> None:
        self._client = client
        self.group = group
        self.name = name
        self.results_dir: Path | None = None
        self._status = client.status(group, name)

    @classmethod
    def of(cls, client: AnalysisClient, group: str, status: JobStatus) -> Job:
        """The job whose status.json was just read as ``status`` (not read again)."""
        job = cls.__new__(cls)
        job._client, job.group, job.name, job.results_dir = client, group, status.job, None
        job._status = status
        return job

    def __repr__(self) -> str:
        return f"Job({self.analysis}/{self.group}/{self.name}: {self.state.value})"

    # -- from status.json ------------------------------------------------------------------------
    @property
    def status(self) -> JobStatus:
        return self._status

    @property
    def analysis(self) -> str:
        return self._status.analysis

    @property
    def state(self) -> State:
        return self._status.state

    @property
    def reason(self) -> str | None:
        return self._status.reason

    @property
    def datasets(self) -> dict[str, DatasetStatus]:
        return dict(self._status.datasets)

    @property
    def cost_usd(self) -> float | None:
        return self._status.cost_usd

    @property
    def finished(self) -> bool:
        """True once the job ended, however it ended (its end.txt exists)."""
        return self._client.finished(self.group, self.name)

    @property
    def succeeded(self) -> bool:
        return self.state.value == "succeeded"

    def refresh(self) -> Job:
        """Read status.json again; returns the job itself."""
        self._status = self._client.status(self.group, self.name)
        return self

    # -- following, logs, results ----------------------------------------------------------------
    def wait(
        self,
        timeout: float | None = None,
        on_progress: OnProgress | None = None,
        *,
        logs: bool = True,
        interval: float = 0.1,
    ) -> State:
        """Block until the job ends; return its final state (whatever it is).

        Raises ``JobTimeout`` if it has not ended after ``timeout`` seconds (None: no limit).
        With ``on_progress``, each new dispatcher log line (``event``) and, if ``logs``, each
        new line of the analysis's output (``log``) is passed to it as it reaches S3.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        for event in self.watch(logs=logs and on_progress is not None, interval=interval):
            if on_progress is not None and event.kind != "step":
                on_progress(event)
            if deadline is not None and time.monotonic() > deadline:
                raise JobTimeout(
                    f"job {self.name} of {self.analysis} is still {self.state.value} "
                    f"after {timeout:g} s",
                    hint="wait longer (job.wait(timeout=...)) or look at job.logs(dataset)",
                )
        return self.state

    def watch(
        self, *, logs: bool = True, dataset: str | None = None, interval: float = 0.1
    ) -> Iterator[Progress]:
        """Yield the job's new dispatcher log lines and analysis output lines until it ends;
        ``Job``'s attributes are kept current meanwhile. Between polls, a ``step`` event with
        the current state is yielded, so a consumer can stop or time out while nothing
        happens. Polls come every 20 ms at first, slowing to ``interval`` over 1.6 s: a short
        job's end is seen within a poll, a long one costs no more requests than before."""
        from .follow import LogTail

        tails: dict[str, LogTail] = {}
        seen = 0
        begun = time.monotonic()
        logs_read = -interval
        polls = 0
        while True:
            self.refresh()
            polls += 1
            # end.txt is written after the status that ends the job: looked for once the
            # status says so (and now and then, for a folder some other tool ended).
            done = (self.state.terminal or polls % 10 == 0) and self.finished
            for event in self._status.events[seen:]:
                yield Progress("event", event.message, time=event.time)
            seen = len(self._status.events)
            now = time.monotonic()
            if logs and (done or now - logs_read >= interval):
                logs_read = now
                for name in self._status.datasets:
                    if dataset and name != dataset:
                        continue
                    tail = tails.setdefault(
                        name, LogTail(self._client, self.group, self.name, name)
                    )
                    for line in tail.poll(ended=done):
                        yield Progress("log", line, dataset=name)
            if done:
                return
            yield Progress("step", self.state.value)
            time.sleep(min(interval, 0.02 + 0.05 * (now - begun)))

    def logs(self, dataset: str) -> Iterator[str]:
        """The lines the analysis has written for ``dataset`` so far (stdout and stderr)."""
        if dataset not in self._status.datasets:
            self.refresh()
        if dataset not in self._status.datasets:
            raise UsageError(
                f"job {self.name} has no dataset {dataset!r}",
                hint=f"its datasets: {', '.join(self._status.datasets) or '(none)'}",
            )
        yield from render_log(self._client.log_since(self.group, self.name, dataset, 0))

    def download(self, dir: str | os.PathLike[str]) -> Path:
        """Download the job folder into ``dir/{job}/``; return that folder."""
        self.results_dir = self._client.download(self.group, self.name, Path(dir))
        return self.results_dir

    # -- cancelling ------------------------------------------------------------------------------
    def cancel(
        self,
        datasets: Sequence[str] | None = None,
        *,
        wait: bool = True,
        timeout: float = 60,
        by: str | None = None,
    ) -> State:
        """Cancel the job (or only ``datasets``): write the cancel request
        ``{group}/submissions/{id}_cancel.json`` a user could write, which the dispatcher acts
        on; with ``wait``, block until those datasets ended. Returns the job's state.

        ``by`` names who cancelled in the reason (default: this user's login name). Raises
        ``UsageError`` if the job already ended or has no such dataset (nothing is written),
        ``JobTimeout`` if the datasets still run after ``timeout`` seconds.
        """
        self.refresh()
        unknown = sorted(set(datasets or ()) - set(self._status.datasets))
        if unknown:
            raise UsageError(
                f"job {self.name} has no dataset {', '.join(unknown)}",
                hint=f"its datasets: {', '.join(self._status.datasets) or '(none)'}",
            )
        wanted = list(datasets) if datasets else list(self._status.datasets)
        if all(self._status.datasets[n].state.terminal for n in wanted):
            raise UsageError(
                f"job {self.name} has nothing left to cancel: it is {self.state.value}",
                hint="only a queued or running job (or dataset) can be cancelled",
            )
        self._client.cancel(self.group, self.name, list(datasets or ()), by or _login())
        if not wait:
            return self.state
        deadline = time.monotonic() + timeout
        while not all(self._status.datasets[n].state.terminal for n in wanted):
            if time.monotonic() > deadline:
                raise JobTimeout(
                    f"job {self.name} of {self.analysis} was not cancelled within {timeout:g} s",
                    hint="is the dispatcher running? (`ncaas-dev status`)",
                )
            time.sleep(0.1)
            self.refresh()
        # The whole job ended: end.txt follows its last dataset by a moment; a caller who
        # waited may download at once.
        while self.state.terminal and not self.finished and time.monotonic() <= deadline:
            time.sleep(0.1)
        return self.state

    def check(self) -> Job:
        """Raise ``JobFailed`` (with the reason) unless the job succeeded; return the job."""
        from ..errors import JobFailed

        if not self.succeeded:
            raise JobFailed(f"job {self.name} {self.state.value}: {self.reason}")
        return self


def _login() -> str | None:
    """Who runs this, for the reason ("cancelled by alice at ..."); None if unknown."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None
