"""``compat: neurocaas``: the job folder's names and files in NeuroCAAS's own layout (pure).

A NeuroCAAS client computes ``job__{bucket}_{timestamp}`` from what it submitted, polls
``process_results/end.txt`` there, and reads ``logs/certificate.txt`` and one
``logs/DATASET_NAME:{dataset}_STATUS.txt`` per dataset. These functions say what those hold;
:mod:`ncaas_dev.jobstore` writes them whenever status.json changes, so they are as current as
it is. A compat job's status.json carries ``"layout": "neurocaas"`` (an extra field, absent in
the default layout, whose files stay exactly as they were).
"""

from __future__ import annotations

import secrets
from typing import Any

from ..status import JobStatus, State, shown_time

NEUROCAAS = "neurocaas"
LAYOUT_FIELD = "layout"
END_MARKER = "end of analysis marker"
DIVIDER = "================"
# How many of the analysis's last output lines the status file's `std` keeps.
STD_LINES = 20

_WORDS = {
    State.QUEUED: "INITIALIZING",
    State.RUNNING: "IN PROGRESS",
    State.SUCCEEDED: "SUCCESS",
}


def job_name(analysis: str, stamp: str) -> str:
    """The job folder a NeuroCAAS client looks for: two underscores, bucket, timestamp."""
    return f"job__{analysis}_{stamp}"


def duplicate_name(name: str) -> str:
    """Where the rejection of a second submission naming a taken folder is written."""
    return f"{name}_duplicate-{secrets.token_hex(3)}"


def is_compat(status: JobStatus) -> bool:
    return (status.model_extra or {}).get(LAYOUT_FIELD) == NEUROCAAS


def mark_compat(status: JobStatus) -> None:
    setattr(status, LAYOUT_FIELD, NEUROCAAS)  # an extra field: see the module's docstring


def _word(status: JobStatus, state: State) -> str:
    if not state.terminal and status.state.terminal:  # rejected or cancelled before it ran
        return "FAILED"
    return _WORDS.get(state, "FAILED")


def _reason(status: JobStatus, name: str) -> str | None:
    ds = status.datasets[name]
    if ds.reason:
        return ds.reason
    if ds.exit_code is not None:
        return f"exit code {ds.exit_code}"
    return status.reason if status.state.terminal else None


def std_lines(status: JobStatus, name: str) -> list[str]:
    ds = status.datasets[name]
    lines = (ds.model_extra or {}).get("std")
    if isinstance(lines, list):
        return [str(line) for line in lines]
    return [ds.last_output] if ds.last_output else []


def dataset_doc(status: JobStatus, name: str) -> dict[str, Any]:
    """The JSON of ``logs/DATASET_NAME:{name}_STATUS.txt``."""
    ds = status.datasets[name]
    doc: dict[str, Any] = {
        "status": _word(status, ds.state),
        "reason": _reason(status, name),
        "input": ds.key,
        "instance": ds.runner,
        "job_start": ds.started,
        "job_finish": ds.finished,
        "std": {str(i): line for i, line in enumerate(std_lines(status, name))},
    }
    extra = ds.model_extra or {}
    for field in ("memory_usage", "cpu_usage"):  # only where the runner measured them
        if field in extra:
            doc[field] = extra[field]
    return doc


def dataset_docs(status: JobStatus) -> dict[str, dict[str, Any]]:
    return {name: dataset_doc(status, name) for name in status.datasets}


def render_certificate(status: JobStatus) -> str:
    """certificate.txt as NeuroCAAS writes it: the monitoring block between exactly two
    dividers, one DATANAME line per dataset (its full key), then the dispatcher's log."""
    lines = ["PER ENVIRONMENT MONITORING:", DIVIDER]
    for ds in status.datasets.values():
        time = shown_time(ds.finished or ds.started or status.updated)
        last = ds.last_output.replace("\n", " ").replace(DIVIDER, "=")[:200]
        lines.append(
            f"DATANAME: {ds.key} | STATUS: {_word(status, ds.state)} | TIME: {time} "
            f"| LAST COMMAND: {last}"
        )
    lines.append(DIVIDER)
    # The log's lines never hold a divider of their own: a parser counts exactly two.
    lines += [
        f"{shown_time(e.time)} {e.message.replace(DIVIDER, '=')}".replace("\n", " ")
        for e in status.events
    ]
    if status.reason and status.state.terminal and status.state != State.SUCCEEDED:
        lines.append(f"REASON: {status.reason}".replace(DIVIDER, "="))
    return "\n".join(lines) + "\n"
