"""A local deploy leaves the analysis runnable, tried as a new user would: `deploy` a blueprint
never built, `up`, then a submission written straight into the deployed bucket succeeds (the
deploy built the image, as `up BLUEPRINT` does; in the cloud the baked AMI holds it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ncaas_dev.analysis import load_record
from ncaas_dev.blueprint import load_blueprint
from ncaas_dev.containers import Engine
from ncaas_dev.status import State
from ncaas_dev.storage import Storage

from .jobs import Lab, copy_blueprint, ncaas

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_deploy_up_then_a_submission_into_s3_succeeds(
    tmp_path: Path, cli_env: dict[str, str], storage: Storage, engine: Engine
) -> None:
    folder = copy_blueprint(FIXTURES / "probe", tmp_path / "fresh", "ncaas-fresh")
    blueprint = load_blueprint(folder).blueprint
    assert engine.image_id(blueprint.image_tag) is None  # never built

    deployed = ncaas(["deploy", str(folder), "--json"], cli_env, timeout=300)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert json.loads(deployed.stdout)["missing"] == []
    image_id = engine.image_id(blueprint.image_tag)
    assert image_id is not None
    record = load_record(storage, blueprint.analysis)
    assert record is not None and record.image_id == image_id

    # `up` without a blueprint (an empty folder: no ./blueprints/ to provision).
    started = ncaas(["up", "--json"], cli_env, cwd=tmp_path)
    assert started.returncode == 0, started.stdout + started.stderr
    assert json.loads(started.stdout)["dispatcher"]["running"] is True

    lab = Lab(storage, blueprint.analysis)
    status = lab.run(dataname=lab.dataset(), configname=lab.config(lines=2))
    assert status.state == State.SUCCEEDED, status.reason
    assert status.provenance.get("image_id") == image_id
