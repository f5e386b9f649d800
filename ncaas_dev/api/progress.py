"""What the API tells a caller while it works: one small event type and the callback's type.

The API prints nothing. A caller that wants to show progress passes ``on_progress``; the CLI
turns these events into Rich output, a notebook may print ``event.message``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["step", "line", "advance", "event", "log", "resource"]


@dataclass(frozen=True)
class Progress:
    """One thing that happened.

    ``kind``:
    - ``step``: a new phase began (``message`` names it; ``total`` is its size in bytes if known);
    - ``line``: a line of output of the current phase (a docker build or Packer line);
    - ``advance``: ``amount`` more bytes of the current phase are done;
    - ``event``: a line of a job's dispatcher log (``time`` is when);
    - ``log``: a line the analysis wrote for ``dataset``;
    - ``resource``: a stack resource changed (``detail`` is CloudFormation's event).
    """

    kind: Kind
    message: str = ""
    dataset: str | None = None
    time: str | None = None
    amount: int = 0
    total: int | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


OnProgress = Callable[[Progress], None]


def emit(on_progress: OnProgress | None, kind: Kind, message: str = "", **more: Any) -> None:
    """Tell the caller, if it listens."""
    if on_progress is not None:
        on_progress(Progress(kind, message, **more))
