"""The Starlette application: routes, the session, error pages, and the body-size guard."""

from __future__ import annotations

import secrets

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..api.browse import Forbidden, NotVisible
from ..errors import NcaasError, ServiceUnavailable
from . import api, cancel, live, pages
from .auth import CsrfFailed, SignInRequired, safe_next
from .common import HERE, WebConfig, render
from .params import BadParameter, TooManyStreams
from .security import SecurityHeaders

MAX_BODY = 1024**2  # the server takes forms and JSON only; data goes straight to S3


class BodyLimit:
    """Refuse request bodies over ``MAX_BODY``: the server never carries data bytes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        length = headers.get(b"content-length", b"0")
        if length.isdigit() and int(length) > MAX_BODY:
            await JSONResponse({"error": "request body too large"}, 413)(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > MAX_BODY:
                raise CsrfFailed()  # answered 403; a chunked body over the limit is refused
            return message

        await self.app(scope, counted, send)


def _wants_json(request: Request) -> bool:
    path = request.url.path
    return (
        path.startswith("/api/")
        or path.endswith(("/events", "/state"))
        or "/logs/" in path
        or "text/event-stream" in request.headers.get("accept", "")
    )


def _signin_path(request: Request, next_url: str) -> str:
    config: WebConfig = request.app.state.web
    from urllib.parse import quote

    where = "/login" if config.cognito else "/signin"
    return f"{where}?next={quote(safe_next(next_url))}"


async def _sign_in_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    target = _signin_path(request, exc.next_url)
    if _wants_json(request) or request.headers.get("hx-request"):
        # fetch/EventSource/htmx callers send the page itself back to sign-in.
        return JSONResponse({"error": "signed out", "signin": target}, 401, {"HX-Redirect": target})
    return RedirectResponse(target, 303)


def _error(request: Request, status: int, title: str, message: str, hint: str = "") -> Response:
    if _wants_json(request):
        return JSONResponse({"error": message, "hint": hint}, status)
    return render(request, "error.html", status, title=title, message=message, hint=hint)


async def _csrf_failed(request: Request, exc: Exception) -> Response:
    return _error(
        request,
        403,
        "Refused",
        "The form's security token is missing or stale.",
        "Reload the page and try again.",
    )


async def _forbidden(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NcaasError)
    return _error(
        request, 403, "Not allowed", exc.message, "Only your group's inputs/ and configs/."
    )


async def _not_visible(request: Request, exc: Exception) -> Response:
    return _error(request, 404, "Not found", "There is nothing here for your group.")


async def _stack_down(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NcaasError)
    return _error(
        request,
        503,
        "The stack is not running",
        exc.message,
        exc.hint or "Start it with `ncaas-dev up`, then reload this page.",
    )


async def _bad_parameter(request: Request, exc: Exception) -> Response:
    return _error(request, 400, "Bad request", str(exc), "Fix the address and try again.")


async def _too_many_streams(request: Request, exc: Exception) -> Response:
    return _error(request, 429, "Too many live views", str(exc))


async def _ncaas_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NcaasError)
    return _error(request, 502, "Something went wrong", exc.message, exc.hint or "")


def create_app(config: WebConfig) -> Starlette:
    routes = [
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        *pages.routes(),
        *live.routes(),
        *api.routes(),
        *cancel.routes(),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeaders, s3_origins=config.s3_origins),
            Middleware(BodyLimit),
            Middleware(
                SessionMiddleware,
                secret_key=config.secret or secrets.token_urlsafe(32),
                session_cookie="ncaas_session",
                max_age=config.session_seconds,
                same_site="lax",
                https_only=config.origin.startswith("https://"),
            ),
        ],
        exception_handlers={
            SignInRequired: _sign_in_required,
            CsrfFailed: _csrf_failed,
            Forbidden: _forbidden,
            NotVisible: _not_visible,
            ServiceUnavailable: _stack_down,
            BadParameter: _bad_parameter,
            TooManyStreams: _too_many_streams,
            NcaasError: _ncaas_error,
        },
    )
    app.state.web = config
    return app


__all__ = ["create_app"]
