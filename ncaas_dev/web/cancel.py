"""The job page's Cancel button: the same cancel request a user could write into S3."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ..api.browse import NotVisible
from ..api.job import Job
from ..errors import UsageError
from .auth import check_csrf
from .common import backend_of, signed_in


def _request_cancel(request: Request, bucket: str, group: str, job: str, user: str) -> str:
    """Write the request (without waiting for it to take effect); say what happened."""
    try:
        found = Job(backend_of(request).client(bucket), group, job)
    except UsageError as e:  # not a job of this group: as if it did not exist
        raise NotVisible(str(e)) from e
    try:
        found.cancel(wait=False, by=user)
    except UsageError as e:  # it ended meanwhile
        return e.message
    return f"Cancel requested by {user}: the job stops in a moment."


async def cancel_job(request: Request) -> Response:
    bucket, job = request.path_params["bucket"], request.path_params["job"]
    user, _ = signed_in(request, bucket)
    await check_csrf(request)
    said = await asyncio.to_thread(_request_cancel, request, bucket, user.group, job, user.user)
    if request.headers.get("hx-request"):  # the button's own request: replace the button
        from html import escape

        return HTMLResponse(f'<p id="cancel-form" class="cancel-requested">{escape(said)}</p>')
    return RedirectResponse(f"/a/{bucket}/jobs/{job}", 303)


def routes() -> list[BaseRoute]:
    return [Route("/a/{bucket}/jobs/{job}/cancel", cancel_job, methods=["POST"])]
