"""The stack in containers, started as `ncaas-dev up --containers` starts it: both images built
offline (`--network none`), `docker-compose up -d` on a free loopback port under a project and a
state folder of this session's own, so neither the session's host LocalStack nor a developer's
stack on 4566 is touched. A missing engine or docker-compose fails the tests: never a skip."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from waiting import free_port  # tests/ is on sys.path: pytest's rootdir conftest

from ncaas_dev.analysis import AnalysisRecord
from ncaas_dev.aws import s3_client, sqs_client
from ncaas_dev.blueprint import LoadedBlueprint, load_blueprint
from ncaas_dev.containers import Engine
from ncaas_dev.local import compose
from ncaas_dev.local.provision import provision
from ncaas_dev.settings import Settings
from ncaas_dev.storage import Storage

from ..jobs import copy_blueprint, pin_image, remove_image

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@dataclass(frozen=True)
class Stack:
    settings: Settings
    storage: Storage
    record: compose.ComposeStack

    def containers(self, engine: Engine) -> list[object]:
        """Every container of the compose project, running or not."""
        label = f"com.docker.compose.project={self.record.project}"
        return list(engine.client.containers.list(all=True, filters={"label": label}))


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory, engine: Engine) -> Iterator[Stack]:
    assert shutil.which("docker-compose"), "docker-compose is missing (make setup installs it)"
    state_dir = tmp_path_factory.mktemp("compose-state")
    settings = Settings(endpoint_url=f"http://127.0.0.1:{free_port()}", state_dir=state_dir)
    record = compose.up(settings, say=lambda line: None)
    try:
        yield Stack(settings, Storage(s3_client(settings), settings.endpoint_url), record)
    finally:
        compose.down(settings)


@pytest.fixture(scope="package")
def compose_probe(
    tmp_path_factory: pytest.TempPathFactory, engine: Engine, stack: Stack
) -> Iterator[LoadedBlueprint]:
    """The probe analysis, built on the host and provisioned on the compose stack."""
    folder = copy_blueprint(FIXTURES / "probe", tmp_path_factory.mktemp("probe"), "ncaas-cmp")
    loaded = load_blueprint(folder)
    image_id = engine.build(loaded)
    pin_image(engine, loaded.blueprint.image_tag)
    record = AnalysisRecord.of(loaded, image_id)
    provision(stack.storage, sqs_client(stack.settings), stack.settings, record)
    yield loaded
    for container in engine.client.containers.list(
        all=True, filters={"label": f"ncaas.analysis={loaded.blueprint.analysis}"}
    ):
        container.remove(force=True)
    remove_image(engine, loaded.blueprint.image_tag)
