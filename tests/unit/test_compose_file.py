"""docker-compose.yml, read as data: the same LocalStack settings as the host runtime, loopback
ports only, and no image that cannot be built on this machine."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from ncaas_dev.errors import UsageError
from ncaas_dev.local.compose import (
    COMPOSE_FILE,
    RECORD,
    ComposeStack,
    containers_status,
    loopback_port,
    project_name,
    read_record,
)
from ncaas_dev.local.images import STACK_IMAGES
from ncaas_dev.local.stack import localstack_env
from ncaas_dev.privacy import LOCAL_AWS
from ncaas_dev.settings import Settings

# What may differ between the host runtime and the container, and why: inside its container
# LocalStack listens on the container's every address (published on the host's loopback) and
# keeps its files in its own file system, not in a state folder.
PER_PLACE = {"GATEWAY_LISTEN", "FILESYSTEM_ROOT", "LOCALSTACK_VOLUME_DIR", "LOCALSTACK_HOST"}


def compose() -> dict[str, dict[str, dict[str, object]]]:
    doc: dict[str, dict[str, dict[str, object]]] = yaml.safe_load(COMPOSE_FILE.read_text())
    return doc


def test_localstack_gets_the_host_runtimes_settings(tmp_path: Path) -> None:
    host = localstack_env(Settings(endpoint_url="http://127.0.0.1:4566", state_dir=tmp_path))
    # Not inherited ones, nor the fixed test credentials every host child gets (privacy.py):
    # a container inherits no developer's environment to scrub.
    ours = {k for k in host if k not in os.environ and k not in LOCAL_AWS}
    container = compose()["services"]["localstack"]["environment"]
    assert isinstance(container, dict)
    assert set(container) == ours
    for name in ours - PER_PLACE:
        assert str(container[name]) == host[name], name
    assert container["GATEWAY_LISTEN"] == "0.0.0.0:4566"
    assert container["LOCALSTACK_HOST"] == "localhost:${NCAAS_COMPOSE_PORT:-4566}"


def test_every_port_is_published_on_loopback_only() -> None:
    published = [p for s in compose()["services"].values() for p in s.get("ports", [])]  # type: ignore[attr-defined]
    assert published, "LocalStack must be reachable from the host"
    assert all(str(p).startswith("127.0.0.1:") for p in published)


def test_only_images_built_here_and_no_build_that_could_pull() -> None:
    ours = {f"{image.repository}:current" for image in STACK_IMAGES}
    for name, service in compose()["services"].items():
        assert "build" not in service, f"{name}: images are built by ncaas_dev.local.images"
        image = str(service["image"])
        assert image.startswith("${NCAAS_") and image.split(":-", 1)[1].rstrip("}") in ours


@pytest.mark.parametrize(
    "endpoint", ["http://10.0.0.5:4566", "https://localhost:4566", "http://example.org"]
)
def test_containers_refuse_an_endpoint_off_loopback(endpoint: str) -> None:
    with pytest.raises(UsageError, match=r"127\.0\.0\.1 only"):
        loopback_port(Settings(endpoint_url=endpoint))


def test_the_port_comes_from_the_endpoint() -> None:
    assert loopback_port(Settings(endpoint_url="http://localhost:4599")) == 4599
    assert loopback_port(Settings(endpoint_url="http://127.0.0.1")) == 4566


def test_no_record_no_containers_stack(tmp_path: Path) -> None:
    assert containers_status(tmp_path) is None
    (tmp_path / RECORD).write_text("{not json")
    assert read_record(tmp_path) is None and containers_status(tmp_path) is None


def test_a_record_whose_containers_are_gone_reads_as_stopped(tmp_path: Path) -> None:
    stack = ComposeStack("ncaas-gone-0000", 4599, str(tmp_path), "ncaas/l:x", "ncaas/d:x")
    (tmp_path / RECORD).write_text(json.dumps(asdict(stack)))
    doc = containers_status(tmp_path)
    assert doc is not None and doc["project"] == "ncaas-gone-0000"
    assert not doc["localstack"]["running"] and not doc["dispatcher"]["running"]


def test_the_project_is_the_state_folders_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NCAAS_COMPOSE_PROJECT", raising=False)
    assert project_name(tmp_path / "a") != project_name(tmp_path / "b")
    assert project_name(tmp_path / "a") == project_name(tmp_path / "a")
