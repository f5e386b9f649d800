"""Signing in and out: the one-time token (local) or Cognito, then the group to act as."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from .auth import (
    CognitoRefused,
    SignInRequired,
    User,
    check_csrf,
    cognito_sign_in,
    pool_analysis,
    safe_next,
    sign_in,
    sign_out,
    signin_url,
)
from .common import backend_of, config_of, render


async def signin(request: Request) -> Response:
    """Local sign-in: the token URL printed by `ncaas-dev web` opens a session (once)."""
    config = config_of(request)
    if config.cognito:
        next_url = safe_next(request.query_params.get("next"))
        return RedirectResponse(f"/login?next={quote(next_url)}", 303)
    next_url = safe_next(request.query_params.get("next"))
    token = request.query_params.get("token", "")
    if token and config.tokens.consume(token):
        request.session.clear()
        request.session["how"] = "local-pending"
        return RedirectResponse(f"/choose?next={quote(next_url)}", 303)
    # Like Jupyter: a fresh one-time link appears where the server runs, never in the page.
    fresh = signin_url(config.origin, config.tokens.issue(), next_url)
    if config.tokens.announce:
        config.tokens.announce(fresh)
    return render(request, "signin.html", 401 if token else 200, used=bool(token), next=next_url)


def _local_pending(request: Request) -> None:
    if request.session.get("how") not in ("local-pending", "local"):
        raise SignInRequired(str(request.url.path))


async def choose(request: Request) -> Response:
    """After a local sign-in: act as any blueprint user, to see exactly what their lab sees."""
    _local_pending(request)
    analyses = await asyncio.to_thread(backend_of(request).analyses, 0)
    people: dict[str, set[str]] = {}
    for analysis in analyses.values():
        for group, users in analysis.groups.items():
            people.setdefault(group, set()).update(users)
    choices = [(g, sorted(users)) for g, users in sorted(people.items())]
    next_url = safe_next(request.query_params.get("next"))
    return render(request, "choose.html", choices=choices, next=next_url)


async def choose_post(request: Request) -> Response:
    _local_pending(request)
    form = await check_csrf(request)
    group, user = str(form.get("group", "")), str(form.get("user", ""))
    known = await asyncio.to_thread(backend_of(request).analyses, 0)
    if not any(user in a.groups.get(group, []) for a in known.values()):
        return render(
            request,
            "error.html",
            400,
            title="Unknown user",
            message=f"{user!r} is not a user of group {group!r} in any blueprint.",
            hint="Pick one from the list.",
        )
    sign_in(request, User(group, user, "local"))
    return RedirectResponse(safe_next(str(form.get("next", "/"))), 303)


async def login(request: Request) -> Response:
    next_url = safe_next(request.query_params.get("next"))
    return render(request, "login.html", next=next_url, problem="")


async def login_post(request: Request) -> Response:
    """Cognito: InitiateAuth with user name and password; ``cognito:groups`` picks the group."""
    config = config_of(request)
    form = await check_csrf(request)
    next_url = safe_next(str(form.get("next", "/")))
    if config.cognito is None:
        return RedirectResponse("/signin", 303)
    name, password = str(form.get("username", "")), str(form.get("password", ""))
    try:
        who = await asyncio.to_thread(cognito_sign_in, config.cognito, name, password)
        analysis = await asyncio.to_thread(pool_analysis, config.cognito, who.pool_id)
    except CognitoRefused as e:
        return render(request, "login.html", 401, next=next_url, problem=str(e))
    # One pool per analysis: its users see that analysis alone, and only as one of the users
    # its blueprint lists for the group (a same-named group elsewhere grants nothing).
    analyses = await asyncio.to_thread(backend_of(request).analyses, 0)
    mine = next((a for a in analyses.values() if a.name == analysis), None)
    usable = [g for g in who.groups if mine and who.name in mine.groups.get(g, [])]
    if mine is None or not usable:
        problem = (
            f"{who.name} is not a listed user of any group of {analysis}; "
            "ask the operator to add you to its blueprint."
        )
        return render(request, "login.html", 403, next=next_url, problem=problem)
    sign_in(request, User(usable[0], who.name, "cognito", analysis))
    return RedirectResponse(next_url, 303)


async def signout(request: Request) -> Response:
    await check_csrf(request)
    sign_out(request)
    return RedirectResponse("/signin", 303)


def routes() -> list[Route]:
    return [
        Route("/signin", signin),
        Route("/choose", choose),
        Route("/choose", choose_post, methods=["POST"]),
        Route("/login", login),
        Route("/login", login_post, methods=["POST"]),
        Route("/signout", signout, methods=["POST"]),
    ]
