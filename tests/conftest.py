"""Shared by every test: integration tests get a real LocalStack and a real Docker engine.

The session starts its own LocalStack (on its own port, with its own state folder) through the
project's own code, so a developer's running stack is never touched. A missing Docker engine or
LocalStack runtime is a test failure, never a skip.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import docker.errors
import isolation  # tests/ is on sys.path: pytest's rootdir conftest
import pytest
from integration.jobs import SESSION_ANALYSES, copy_blueprint, provisioned
from waiting import free_port  # tests/ is on sys.path: pytest's rootdir conftest
from warm_server import wait_for_command_server

from ncaas_dev.aws import s3_client
from ncaas_dev.blueprint import LoadedBlueprint
from ncaas_dev.containers import Engine, connect
from ncaas_dev.local.stack import (
    STACK_PROCESSES,
    PidFile,
    start_dispatcher,
    start_localstack,
)
from ncaas_dev.settings import Settings
from ncaas_dev.storage import Storage

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"


def pytest_configure(config: pytest.Config) -> None:
    """Before anything is imported or started: the session's own environment (isolation.py)."""
    isolation.start()


def pytest_unconfigure(config: pytest.Config) -> None:
    isolation.stop()


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ncaas-state")


@pytest.fixture(scope="session")
def settings(state_dir: Path) -> Iterator[Settings]:
    """A LocalStack of the test session's own, started the way `ncaas-dev up` starts it."""
    port = int(os.environ.get("NCAAS_TEST_LOCALSTACK_PORT", free_port()))
    settings = Settings(endpoint_url=f"http://127.0.0.1:{port}", state_dir=state_dir)
    start_localstack(settings)
    yield settings
    for name in STACK_PROCESSES:  # whatever the session's `up`s and `run`s started
        PidFile(state_dir, name).stop()


def via_command_server() -> bool:
    """``NCAAS_TEST_COMMAND_SERVER=1``: every `ncaas-dev` of the session goes through the warm
    command server (started for the session); unset or 0: none does, even after a `run` has
    started one. Either way the same for every test, whatever ran before it."""
    return os.environ.get("NCAAS_TEST_COMMAND_SERVER", "0") == "1"


@pytest.fixture(scope="session")
def cli_env(settings: Settings) -> dict[str, str]:
    """Environment for `ncaas-dev` subprocesses pointed at the session's stack."""
    assert settings.endpoint_url
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": settings.endpoint_url,
        "NCAAS_STATE_DIR": str(settings.state_dir),
        "COLUMNS": "200",
    }
    if via_command_server():
        env.pop("NCAAS_NO_COMMAND_SERVER", None)
        wait_for_command_server(settings)
    else:
        env["NCAAS_NO_COMMAND_SERVER"] = "1"
    return env


@pytest.fixture(scope="session")
def storage(settings: Settings) -> Storage:
    return Storage(s3_client(settings), settings.endpoint_url)


@pytest.fixture(scope="session")
def engine() -> Engine:
    return Engine(connect())


@pytest.fixture(scope="session", autouse=True)
def _no_images_left(request: pytest.FixtureRequest) -> Iterator[None]:
    """Analysis images the session built (tests, the CLI, bake) are removed when it ends: only
    images of analyses it named itself, never another session's on the same engine."""
    if not any(item.get_closest_marker("integration") for item in request.session.items):
        yield  # a unit-only run needs no engine
        return
    engine = request.getfixturevalue("engine")
    before = {tag for image in engine.client.images.list() for tag in image.tags}
    yield
    for pin in engine.client.containers.list(all=True, filters={"label": "ncaas.test=pin"}):
        if pin.labels.get("ncaas.pin.analysis") in SESSION_ANALYSES:
            pin.remove(force=True)
    for image in engine.client.images.list(filters={"label": "ncaas=image"}):
        if image.labels.get("ncaas.analysis") not in SESSION_ANALYSES:
            continue
        for tag in set(image.tags) - before:
            with contextlib.suppress(docker.errors.APIError):  # still used: left alone
                engine.client.images.remove(tag)


@pytest.fixture(scope="session")
def probe(
    tmp_path_factory: pytest.TempPathFactory, engine: Engine, storage: Storage, settings: Settings
) -> Iterator[LoadedBlueprint]:
    """The probe analysis under a bucket name unique to this session, built and provisioned."""
    folder = copy_blueprint(FIXTURES / "probe", tmp_path_factory.mktemp("probe"), "ncaas-test")
    with provisioned(engine, storage, settings, folder) as (loaded, _):
        yield loaded


@pytest.fixture(scope="session")
def dispatcher(settings: Settings, probe: LoadedBlueprint) -> int:
    """The stack's dispatcher, started as `ncaas-dev up` starts it; returns its pid."""
    info = start_dispatcher(settings, "docker")
    assert info.pid is not None
    return info.pid
