"""What the web modules share: the configuration, the templates and a few request helpers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from ..api.browse import Analysis, Backend, NotVisible
from .auth import CognitoConfig, Sessions, Tokens, User, csrf_token, current_user
from .params import StreamSlots

HERE = Path(__file__).parent
SESSION_SECONDS = 8 * 3600


@dataclass
class WebConfig:
    backend: Backend
    origin: str  # this client's own origin, e.g. http://127.0.0.1:8765
    tokens: Tokens
    cognito: CognitoConfig | None = None
    session_seconds: int = SESSION_SECONDS
    pickup_seconds: float = 30.0  # a submission with no job folder after this was not picked up
    secret: str = ""
    streams: StreamSlots = field(default_factory=StreamSlots)  # live streams per session
    sessions: Sessions = field(default_factory=Sessions)  # signed-in ids (sign-out revokes)
    s3_origins: tuple[str, ...] = ()  # where browsers PUT parts and fetch figures (CSP)


templates = Jinja2Templates(directory=str(HERE / "templates"))


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    context.setdefault("user", request.scope.get("ncaas_user"))
    context["csrf"] = csrf_token(request)
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def backend_of(request: Request) -> Backend:
    config: WebConfig = request.app.state.web
    return config.backend


def config_of(request: Request) -> WebConfig:
    config: WebConfig = request.app.state.web
    return config


def signed_in(request: Request, bucket: str | None = None) -> tuple[User, Analysis | None]:
    """The signed-in user (else SignInRequired) and, given a bucket, the analysis if the
    user's group may use it (else NotVisible: 404, as if it did not exist)."""
    user = current_user(request)
    request.scope["ncaas_user"] = user
    analysis = backend_of(request).analysis(bucket, user.group) if bucket is not None else None
    if analysis is not None and user.analysis is not None and analysis.name != user.analysis:
        raise NotVisible(f"no analysis {bucket!r} for this sign-in")  # another pool's analysis
    return user, analysis
