"""The web client under test: served on a thread of the test session against its LocalStack,
driven by Debian's Chromium through Playwright (never `playwright install`: it downloads).

A missing /usr/bin/chromium is a failure (`make test` installs it through
scripts/ensure-test-packages.sh), never a skip.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from browser import CHROMIUM, CHROMIUM_ARGS  # tests/ is on sys.path: pytest's rootdir conftest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from waiting import free_port  # tests/ is on sys.path: pytest's rootdir conftest

from integration.jobs import ROOT, copy_blueprint, provisioned
from ncaas_dev.blueprint import LoadedBlueprint
from ncaas_dev.containers import Engine
from ncaas_dev.settings import Settings
from ncaas_dev.storage import Storage
from ncaas_dev.web.auth import signin_url
from ncaas_dev.web.common import WebConfig
from ncaas_dev.web.server import make_config, prepare, serving

SHOTS = Path(os.environ.get("NCAAS_WEB_SCREENSHOTS", ROOT / "build" / "web-screenshots"))


@dataclass
class Web:
    url: str
    config: WebConfig

    def signin_link(self, next_url: str = "/") -> str:
        return signin_url(self.url, self.config.tokens.issue(), next_url)


@pytest.fixture(scope="session")
def spike(
    tmp_path_factory: pytest.TempPathFactory, engine: Engine, storage: Storage, settings: Settings
) -> Iterator[LoadedBlueprint]:
    """The bundled example under a session-unique name, built and provisioned."""
    folder = copy_blueprint(
        ROOT / "blueprints" / "spike-detect", tmp_path_factory.mktemp("spike"), "ncaas-web"
    )
    with provisioned(engine, storage, settings, folder) as (loaded, _):
        yield loaded


@pytest.fixture(scope="session")
def web(
    settings: Settings, probe: LoadedBlueprint, spike: LoadedBlueprint, dispatcher: int
) -> Iterator[Web]:
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    config = make_config(settings, origin)
    prepare(config)
    with serving(config, "127.0.0.1", port):
        yield Web(origin, config)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), (
        f"{CHROMIUM} is missing: `make test` installs it (scripts/ensure-test-packages.sh)"
    )
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


SignIn = Callable[[str, str], Page]


@pytest.fixture
def sign_in(browser: Browser, web: Web) -> Iterator[SignIn]:
    """A fresh browser context signed in as ``user`` of ``group`` (through the token link)."""
    contexts: list[BrowserContext] = []

    def open_as(group: str, user: str) -> Page:
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.goto(web.signin_link())
        page.click(f"form.choice button[data-group='{group}'][value='{user}']")
        page.wait_for_url(f"{web.url}/")
        return page

    yield open_as
    for context in contexts:
        context.close()


def screenshot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def make_file(path: Path, size: int) -> Path:
    """``size`` random bytes (written in 8 MiB steps, so memory stays small)."""
    with path.open("wb") as out:
        left = size
        while left:
            step = min(left, 8 * 1024**2)
            out.write(os.urandom(step))
            left -= step
    return path


def spike_data(folder: Path) -> Path:
    out = folder / "rec.bin"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "blueprints/spike-detect/generate_data.py"),
            "--out",
            str(out),
            "--seconds",
            "3",
        ],
        check=True,
        capture_output=True,
    )
    return out


ServeApp = Callable[..., Web]


@pytest.fixture
def serve_app(tmp_path: Path) -> Iterator[ServeApp]:
    """Another instance of the web client (its own port, endpoint and options)."""
    stack = contextlib.ExitStack()

    def start(endpoint: str, **options: Any) -> Web:
        port = free_port()
        origin = f"http://127.0.0.1:{port}"
        config = make_config(Settings(endpoint_url=endpoint, state_dir=tmp_path), origin)
        for name, value in options.items():
            setattr(config, name, value)
        stack.enter_context(serving(config, "127.0.0.1", port))
        return Web(origin, config)

    with stack:
        yield start


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """moto's server: an S3 no dispatcher watches, and the cognito-idp LocalStack lacks."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def sign_in_page(browser: Browser, web: Web, group: str, user: str, next_url: str = "/") -> Page:
    page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
    page.goto(web.signin_link(next_url))
    page.click(f"form.choice button[data-group='{group}'][value='{user}']")
    return page
