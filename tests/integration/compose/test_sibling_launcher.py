"""The sibling launcher's unhappy paths on the real engine, no stack needed: a runner container
the engine cannot start leaves nothing behind, and one that dies is reaped with its exit code."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ncaas_dev.analysis import AnalysisRecord
from ncaas_dev.blueprint import parse_blueprint
from ncaas_dev.containers import Engine
from ncaas_dev.errors import NcaasError
from ncaas_dev.launchers.base import DatasetTask
from ncaas_dev.launchers.sibling import SiblingLauncher, runner_filters
from ncaas_dev.local.images import DISPATCHER, ensure_image

pytestmark = pytest.mark.integration


def task(state_dir: Path) -> DatasetTask:
    blueprint = parse_blueprint(
        {"analysis": f"ncaas-sib-{secrets.token_hex(3)}", "groups": [{"name": "labA"}]}, "test"
    )
    record = AnalysisRecord(blueprint=blueprint, content_hash="x", image="none:none")
    return DatasetTask(
        bucket=blueprint.analysis,
        group="labA",
        job="job_x",
        dataset="rec.bin",
        data_key="labA/inputs/rec.bin",
        config_key=None,
        record=record,
        endpoint_url="http://127.0.0.1:9",
        region="us-east-1",
    )


@pytest.fixture
def launcher(tmp_path: Path, engine: Engine) -> Iterator[SiblingLauncher]:
    template = {
        "image": ensure_image(DISPATCHER, say=lambda line: None),
        "user": None,
        "environment": ["NCAAS_STATE_DIR=" + str(tmp_path)],
        "volumes": [],
        "group_add": None,
        "network": "none",
    }
    yield SiblingLauncher(tmp_path, engine.client, template)
    for left in engine.client.containers.list(all=True, filters=runner_filters(tmp_path)):
        left.remove(force=True)


def test_a_runner_the_engine_cannot_start_leaves_no_container(
    launcher: SiblingLauncher, engine: Engine, tmp_path: Path
) -> None:
    launcher.template["user"] = "no-such-user-here"  # created, then refused at start
    with pytest.raises(NcaasError, match="could not start a runner container"):
        launcher.launch(task(tmp_path))
    assert engine.client.containers.list(all=True, filters=runner_filters(tmp_path)) == []


def test_a_runner_that_dies_is_reaped_with_its_exit_code(
    launcher: SiblingLauncher, engine: Engine, tmp_path: Path
) -> None:
    t = task(tmp_path)
    runner = launcher.launch(t)  # its task file is not mounted in: the runner fails at once
    assert runner.startswith("docker:runner-")
    assert launcher.active(t.bucket) == 1
    assert launcher.active("another-analysis") == 0
    deadline = time.monotonic() + 60
    ended = launcher.reap()
    while not ended:
        assert time.monotonic() < deadline, "the runner container never ended"
        time.sleep(0.2)
        ended = launcher.reap()
    (finished,) = ended
    assert finished.task == t and finished.runner == runner
    assert finished.exit_code not in (0, None)
    assert "runner container exited with code" in finished.detail
    assert launcher.active(t.bucket) == 0  # reaped means removed
    log = tmp_path / "runners" / t.bucket / "labA" / "job_x" / "rec.bin.task.runner.log"
    assert log.read_bytes(), "the runner's own output is kept where a host runner's goes"
