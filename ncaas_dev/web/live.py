"""Server-Sent Events: a job's state as it changes, and each dataset's log as it grows.

A log event's id is the byte offset just past the lines it carries. A browser that reconnects
sends it back as ``Last-Event-ID`` and the stream resumes exactly there: no line twice, none
lost. Lines are sent rendered as a terminal shows them (a CR-redrawn progress bar as its latest
state), whole lines only until the job ends; the line being drawn comes as ``partial`` events.
Whatever bytes a log holds, every CR, LF and CRLF starts a new ``data:`` line.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from ..api.browse import NotVisible
from .auth import session_key
from .common import backend_of, config_of, signed_in
from .pages import summary
from .params import event_offset

POLL_SECONDS = 0.4
KEEPALIVE_SECONDS = 15.0
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


# Browsers end an SSE line at CR, LF or CRLF: each must start a ``data:`` line of its own,
# or a log printing "\rid: 0\r\revent: end" would forge fields.
_LINE_END = re.compile(r"\r\n|\r|\n")


def event(data: str, *, name: str | None = None, event_id: int | None = None) -> str:
    lines = [f"event: {name}"] if name else []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines += [f"data: {line}" for line in _LINE_END.split(data)]
    return "\n".join(lines) + "\n\n"


def _streaming(request: Request, stream: AsyncIterator[str]) -> Response:
    """The stream, if this session holds fewer than its limit of streams (else 429)."""
    slots, key = config_of(request).streams, session_key(request)
    slots.take(key)
    return StreamingResponse(
        slots.hold(key, stream), media_type="text/event-stream", headers=HEADERS
    )


async def job_events(request: Request) -> Response:
    """``status`` events (the job's summary and per-dataset states) whenever they change."""
    bucket, job = request.path_params["bucket"], request.path_params["job"]
    user, _ = signed_in(request, bucket)
    backend = backend_of(request)
    await asyncio.to_thread(backend.status, bucket, user.group, job)  # 404 before streaming

    async def stream() -> AsyncIterator[str]:
        last, quiet = "", 0.0
        yield "retry: 1000\n\n"
        while not await request.is_disconnected():
            status = await asyncio.to_thread(backend.status, bucket, user.group, job)
            doc: dict[str, object] = {"state": "waiting", "datasets": {}, "terminal": False}
            if status is not None:
                doc = {
                    **summary(status),
                    "terminal": status.state.terminal,
                    "datasets": {
                        name: {
                            "state": ds.state.value,
                            "reason": ds.reason,
                            "exit_code": ds.exit_code,
                            "last_output": ds.last_output,
                            "progress": ds.progress,
                        }
                        for name, ds in status.datasets.items()
                    },
                    "certificate": await asyncio.to_thread(
                        backend.certificate, bucket, user.group, job
                    ),
                }
            text = json.dumps(doc)
            if text != last:
                last, quiet = text, 0.0
                yield event(text, name="status")
                if doc["terminal"]:
                    yield event("", name="end")
                    return
            elif quiet >= KEEPALIVE_SECONDS:
                quiet = 0.0
                yield ": keepalive\n\n"
            await asyncio.sleep(POLL_SECONDS)
            quiet += POLL_SECONDS

    return _streaming(request, stream())


async def log_events(request: Request) -> Response:
    """``log`` events: the lines the analysis completed, as a terminal shows them (a tqdm bar's
    CR redraws rendered to its latest state); ``partial``: the line being drawn, when it
    changes. A ``log`` event's id is the byte offset just past its last newline."""
    bucket, job = request.path_params["bucket"], request.path_params["job"]
    dataset = request.path_params["dataset"]
    user, _ = signed_in(request, bucket)
    start = event_offset(request)
    backend = backend_of(request)
    status = await asyncio.to_thread(backend.status, bucket, user.group, job)
    if status is not None and dataset not in status.datasets:
        raise NotVisible(f"no dataset {dataset!r} in {job}")
    tail = backend.log_tail(bucket, user.group, job, dataset, start)

    async def stream() -> AsyncIterator[str]:
        shown, quiet = "", 0.0
        yield "retry: 1000\n\n"
        while not await request.is_disconnected():
            # Whether it ended is read before the log: a log read after it is complete.
            ended = await asyncio.to_thread(backend.finished, bucket, user.group, job)
            lines = await asyncio.to_thread(tail.poll, ended)
            if lines:
                yield event("\n".join(lines), name="log", event_id=tail.offset)
                quiet = 0.0
            if ended:
                yield event("", name="end", event_id=tail.offset)
                return
            if tail.current != shown:
                shown = tail.current
                yield event(shown, name="partial")
                quiet = 0.0
            if quiet >= KEEPALIVE_SECONDS:
                quiet = 0.0
                yield ": keepalive\n\n"
            await asyncio.sleep(POLL_SECONDS)
            quiet += POLL_SECONDS

    return _streaming(request, stream())


def routes() -> list[BaseRoute]:
    return [
        Route("/a/{bucket}/jobs/{job}/events", job_events),
        Route("/a/{bucket}/jobs/{job}/logs/{dataset}", log_events),
    ]
