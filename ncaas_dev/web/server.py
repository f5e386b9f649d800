"""Build the web client for a stack and serve it with uvicorn (what `ncaas-dev web` runs)."""

from __future__ import annotations

import contextlib
import ipaddress
import sys
import threading
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import uvicorn

from ..api.browse import Settings, open_backend
from ..errors import NcaasError, UsageError
from .app import create_app
from .auth import CognitoConfig, Tokens, signin_url
from .common import WebConfig


def make_config(
    settings: Settings,
    origin: str,
    cognito: CognitoConfig | None = None,
    announce: Callable[[str], None] | None = None,
) -> WebConfig:
    backend = open_backend(settings)
    s3 = urlsplit(settings.endpoint_url) if settings.endpoint_url else None
    return WebConfig(
        backend=backend,
        origin=origin,
        tokens=Tokens(announce),
        cognito=cognito,
        s3_origins=(f"{s3.scheme}://{s3.netloc}",) if s3 else (),
    )


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def prepare(config: WebConfig) -> None:
    """Let this origin upload into every analysis's bucket (the stack may still be down)."""
    backend = config.backend
    with contextlib.suppress(NcaasError):
        for bucket in backend.analyses(0):
            backend.allow_browser(bucket, config.origin)


def _loopback(host: str) -> bool:
    if host.lower() in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: whatever it resolves to, others may reach it


def web_origin(host: str, port: int, origin: str | None = None, cloud: bool = False) -> str:
    """The origin browsers reach this client at: the bucket's CORS rule, the sign-in links and
    the secure-cookie choice follow it. Off loopback, plain HTTP carries the session cookie
    and the sign-in link past other machines: such a bind must name its --origin, and with
    --cloud (real accounts and data) that origin must be https."""
    if origin is not None:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/"):
            raise UsageError(
                f"--origin {origin!r} is not an origin",
                hint="give scheme://host[:port] as browsers open it, e.g. http://lab-pc:8765",
            )
        if cloud and parts.scheme != "https" and not _loopback(host):
            raise UsageError(
                f"--origin {origin} is plain HTTP, but with --cloud off loopback it must be https",
                hint="serve it behind a TLS proxy and give --origin https://NAME",
            )
        return f"{parts.scheme}://{parts.netloc}"
    if not _loopback(host):
        with contextlib.suppress(ValueError):
            if ipaddress.ip_address(host.strip("[]")).is_unspecified:
                raise UsageError(
                    f"--host {host} listens on every interface, so the address browsers open "
                    "is unknown",
                    hint=f"add --origin http://THIS-MACHINE:{port} (the name users type)",
                )
        raise UsageError(
            f"--host {host} is reachable from other machines, so it needs --origin",
            hint=f"add --origin http://THIS-MACHINE:{port} (https with --cloud), or keep "
            "--host 127.0.0.1",
        )
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host.strip("[]")).version == 6:
            return f"http://[{host.strip('[]')}]:{port}"
    return f"http://{host}:{port}"


def serve(
    settings: Settings,
    host: str,
    port: int,
    cognito: CognitoConfig | None = None,
    origin: str | None = None,
) -> None:
    origin = web_origin(host, port, origin, cloud=not settings.local)
    config = make_config(settings, origin, cognito, announce=lambda url: _say(f"sign in: {url}"))
    prepare(config)
    if cognito:
        _say(f"ncaas-dev web: open {origin}/login and sign in with your Cognito user")
    else:
        _say(f"ncaas-dev web: open {signin_url(origin, config.tokens.issue())}")
        _say("(the link works once; opening the site without it prints a fresh one here)")
    uvicorn.run(create_app(config), host=host, port=port, log_level="warning")


@contextlib.contextmanager
def serving(config: WebConfig, host: str, port: int) -> Iterator[uvicorn.Server]:
    """The app served on a thread of this process, for tests and benchmarks."""
    server = uvicorn.Server(
        uvicorn.Config(create_app(config), host=host, port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the web server did not start")
        threading.Event().wait(0.05)
    try:
        yield server
    finally:
        server.should_exit = True
        thread.join(10)
