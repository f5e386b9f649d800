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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.requests import Request

CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class User:
    group: str
    user: str
    how: str  # "local" or "cognito"


class SignInRequired(Exception):
    """No (or an expired) session: back to sign-in, remembering the page."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


class CsrfFailed(Exception):
    """A POST without the session's CSRF token."""


class Tokens:
    """One-time sign-in tokens, as Jupyter prints them: each works once."""

    def __init__(self, announce: Callable[[str], None] | None = None) -> None:
        self._live: set[str] = set()
        self._lock = threading.Lock()
        self.announce = announce

    def issue(self) -> str:
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._live.add(token)
        return token

    def consume(self, token: str) -> bool:
        with self._lock:
            for live in self._live:
                if hmac.compare_digest(live, token):
                    self._live.discard(live)
                    return True
        return False


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
    return User(group, user, how)


def sign_in(request: Request, user: User) -> None:
    request.session.clear()
    request.session.update({"group": user.group, "user": user.user, "how": user.how})
    request.session["csrf"] = secrets.token_urlsafe(24)


# -- Cognito ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CognitoConfig:
    client_id: str
    region: str
    endpoint_url: str | None = None  # moto's server in tests; None: AWS


class CognitoRefused(Exception):
    """Wrong user name or password, or a challenge this client does not answer."""


def id_token_claims(token: str) -> dict[str, Any]:
    """The IdToken's claims. The token came straight from Cognito over the API call this
    process made, not from the browser, so its signature needs no second check here."""
    payload = token.split(".")[1]
    payload += "=" * (-len(payload) % 4)
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload))
    return claims


def cognito_groups(config: CognitoConfig, username: str, password: str) -> tuple[str, list[str]]:
    """Sign in with InitiateAuth (USER_PASSWORD_AUTH); the user's name and Cognito groups."""
    from botocore.exceptions import ClientError

    from ..api.browse import cognito_client

    client = cognito_client(config.region, config.endpoint_url)
    try:
        reply = client.initiate_auth(
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
    return name, [str(g) for g in groups] if isinstance(groups, list) else []
