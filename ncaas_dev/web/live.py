"""Server-Sent Events: a job's state as it changes, and each dataset's log as it grows.

A log event's id is the byte offset just past the lines it carries. A browser that reconnects
sends it back as ``Last-Event-ID`` and the stream resumes exactly there: no line twice, none
lost. Only whole lines are sent until the job ends (then the last partial line too).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from ..api.browse import NotVisible
from .common import backend_of, signed_in
from .pages import summary

POLL_SECONDS = 0.4
KEEPALIVE_SECONDS = 15.0
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def event(data: str, *, name: str | None = None, event_id: int | None = None) -> str:
    lines = [f"event: {name}"] if name else []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines += [f"data: {line}" for line in data.split("\n")]
    return "\n".join(lines) + "\n\n"


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

    return StreamingResponse(stream(), media_type="text/event-stream", headers=HEADERS)


def _offset(request: Request) -> int:
    raw = request.headers.get("last-event-id") or request.query_params.get("offset") or "0"
    return int(raw) if raw.isdigit() else 0


async def log_events(request: Request) -> Response:
    bucket, job = request.path_params["bucket"], request.path_params["job"]
    dataset = request.path_params["dataset"]
    user, _ = signed_in(request, bucket)
    backend = backend_of(request)
    status = await asyncio.to_thread(backend.status, bucket, user.group, job)
    if status is not None and dataset not in status.datasets:
        raise NotVisible(f"no dataset {dataset!r} in {job}")
    tail = backend.log_tail(bucket, user.group, job, dataset, _offset(request))

    async def stream() -> AsyncIterator[str]:
        quiet = 0.0
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
            if quiet >= KEEPALIVE_SECONDS:
                quiet = 0.0
                yield ": keepalive\n\n"
            await asyncio.sleep(POLL_SECONDS)
            quiet += POLL_SECONDS

    return StreamingResponse(stream(), media_type="text/event-stream", headers=HEADERS)


def routes() -> list[BaseRoute]:
    return [
        Route("/a/{bucket}/jobs/{job}/events", job_events),
        Route("/a/{bucket}/jobs/{job}/logs/{dataset}", log_events),
    ]
