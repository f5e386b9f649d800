"""Who is signed in: one-time sign-in tokens (local), Cognito (cloud), the session, CSRF.

The session is Starlette's signed cookie (itsdangerous; HttpOnly, SameSite=Lax). It holds the
signed-in group and user and the CSRF token; no AWS credential is ever put in it or in a page.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.requests import Request

CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
TOKEN_SECONDS = 600.0  # a sign-in link works for 10 minutes
MAX_TOKENS = 64


@dataclass(frozen=True)
class User:
    group: str
    user: str
    how: str  # "local" or "cognito"
    # Signed in through this analysis's own user pool: the session sees that analysis alone.
    analysis: str | None = None


class SignInRequired(Exception):
    """No (or an expired) session: back to sign-in, remembering the page."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


class CsrfFailed(Exception):
    """A POST without the session's CSRF token."""


class Tokens:
    """One-time sign-in tokens, as Jupyter prints them: each works once, for ``ttl`` seconds,
    and at most ``limit`` are live (opening the site signed out prints a fresh one, so the
    oldest give way)."""

    def __init__(
        self,
        announce: Callable[[str], None] | None = None,
        ttl: float = TOKEN_SECONDS,
        limit: int = MAX_TOKENS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._live: dict[str, float] = {}  # token -> when it was issued, oldest first
        self._lock = threading.Lock()
        self.announce = announce
        self.ttl, self.limit, self.clock = ttl, limit, clock

    def issue(self) -> str:
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._drop_expired()
            while len(self._live) >= self.limit:
                del self._live[next(iter(self._live))]
            self._live[token] = self.clock()
        return token

    def consume(self, token: str) -> bool:
        with self._lock:
            self._drop_expired()
            for live in self._live:
                if hmac.compare_digest(live, token):
                    del self._live[live]
                    return True
        return False

    def __len__(self) -> int:
        with self._lock:
            self._drop_expired()
            return len(self._live)

    def _drop_expired(self) -> None:
        now = self.clock()
        for token in [t for t, issued in self._live.items() if now - issued > self.ttl]:
            del self._live[token]


class Sessions:
    """The signed-in sessions this server made: the cookie carries an id, and signing out
    revokes it here, so a copy of the cookie stops working too."""

    def __init__(self, limit: int = 10_000) -> None:
        self._live: dict[str, None] = {}  # ids, oldest first
        self._lock = threading.Lock()
        self.limit = limit

    def open(self) -> str:
        sid = secrets.token_urlsafe(18)
        with self._lock:
            while len(self._live) >= self.limit:
                del self._live[next(iter(self._live))]
            self._live[sid] = None
        return sid

    def live(self, sid: object) -> bool:
        with self._lock:
            return isinstance(sid, str) and sid in self._live

    def revoke(self, sid: object) -> None:
        with self._lock:
            if isinstance(sid, str):
                self._live.pop(sid, None)


def _sessions(request: Request) -> Sessions:
    sessions: Sessions = request.app.state.web.sessions
    return sessions


def safe_next(value: str | None) -> str:
    """Only a path on this site (no scheme, no host, no ``//evil``) may be returned to."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def next_of(request: Request) -> str:
    url = request.url.path
    if request.url.query:
        url += "?" + request.url.query
    return url


def signin_url(base: str, token: str, next_url: str = "/") -> str:
    url = f"{base}/signin?token={token}"
    return url if next_url == "/" else f"{url}&next={quote(next_url)}"


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(24)
        request.session["csrf"] = token
    return token


async def check_csrf(request: Request) -> dict[str, Any]:
    """The POST's form (empty for JSON), after checking its CSRF token (header or field)."""
    expected = request.session.get("csrf")
    sent = request.headers.get(CSRF_HEADER)
    form: dict[str, Any] = {}
    if request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        raw = await request.form()
        form = {k: raw.getlist(k) if len(raw.getlist(k)) > 1 else raw[k] for k in raw}
        sent = sent or str(form.get(CSRF_FIELD, ""))
    if not isinstance(expected, str) or not sent or not hmac.compare_digest(expected, sent):
        raise CsrfFailed()
    return form


def current_user(request: Request) -> User:
    session = request.session
    group, user, how = session.get("group"), session.get("user"), session.get("how")
    if not (isinstance(group, str) and isinstance(user, str) and isinstance(how, str)):
        raise SignInRequired(next_of(request))
    if not _sessions(request).live(session.get("sid")):  # signed out, or another server's
        session.clear()
        raise SignInRequired(next_of(request))
    analysis = session.get("analysis")
    if how == "cognito" and not isinstance(analysis, str):
        raise SignInRequired(next_of(request))  # a Cognito session is always for one analysis
    return User(group, user, how, analysis if isinstance(analysis, str) else None)


def session_key(request: Request) -> str:
    """What tells this browser session from others (its id; its CSRF token if it has none)."""
    key = request.session.get("sid") or request.session.get("csrf")
    return key if isinstance(key, str) else ""


def sign_out(request: Request) -> None:
    _sessions(request).revoke(request.session.get("sid"))
    request.session.clear()


def sign_in(request: Request, user: User) -> None:
    request.session.clear()
    request.session.update({"group": user.group, "user": user.user, "how": user.how})
    request.session["sid"] = _sessions(request).open()
    if user.analysis is not None:
        request.session["analysis"] = user.analysis
    request.session["csrf"] = secrets.token_urlsafe(24)


# -- Cognito ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CognitoConfig:
    client_id: str
    region: str
    endpoint_url: str | None = None  # moto's server in tests; None: AWS
    analysis: str | None = None  # the pool's analysis; None: read from the pool's name


class CognitoRefused(Exception):
    """Wrong user name or password, or a challenge this client does not answer."""


def id_token_claims(token: str) -> dict[str, Any]:
    """The IdToken's claims. The token came straight from Cognito over the API call this
    process made, not from the browser, so its signature needs no second check here."""
    payload = token.split(".")[1]
    payload += "=" * (-len(payload) % 4)
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload))
    return claims


@dataclass(frozen=True)
class CognitoUser:
    name: str
    groups: list[str]
    pool_id: str  # the user pool that signed them in (from the IdToken's issuer)


POOL_PREFIX = "ncaas-"  # deploy names each analysis's pool ncaas-{analysis} (cognito.py)


def _idp(config: CognitoConfig) -> Any:
    from ..api.browse import cognito_client

    return cognito_client(config.region, config.endpoint_url)


def cognito_sign_in(config: CognitoConfig, username: str, password: str) -> CognitoUser:
    """Sign in with InitiateAuth (USER_PASSWORD_AUTH): the user's name, groups and pool."""
    from botocore.exceptions import ClientError

    try:
        reply = _idp(config).initiate_auth(
            ClientId=config.client_id,
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": username, "PASSWORD": password},
        )
    except ClientError as e:
        raise CognitoRefused("wrong user name or password") from e
    result = reply.get("AuthenticationResult")
    if not result or "IdToken" not in result:
        raise CognitoRefused(
            f"Cognito asks for {reply.get('ChallengeName', 'a challenge')} first; "
            "finish it in the AWS console or ask the operator to set a permanent password"
        )
    claims = id_token_claims(result["IdToken"])
    groups = claims.get("cognito:groups", [])
    name = str(claims.get("cognito:username", username))
    pool_id = str(claims.get("iss", "")).rstrip("/").rsplit("/", 1)[-1]
    listed = [str(g) for g in groups] if isinstance(groups, list) else []
    return CognitoUser(name, listed, pool_id)


def pool_analysis(config: CognitoConfig, pool_id: str) -> str:
    """The analysis whose stack made this pool (deploy names it ncaas-{analysis})."""
    if config.analysis:
        return config.analysis
    from botocore.exceptions import ClientError

    try:
        name = str(_idp(config).describe_user_pool(UserPoolId=pool_id)["UserPool"]["Name"])
    except ClientError as e:
        raise CognitoRefused(
            "this server cannot tell which analysis its user pool belongs to; "
            "ask the operator to start it with --cognito-analysis NAME"
        ) from e
    return name.removeprefix(POOL_PREFIX)
