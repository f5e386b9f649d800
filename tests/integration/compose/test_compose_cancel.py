"""A cancel file on the stack in containers: the sibling launcher SIGTERMs the dataset's runner
container, which stops the analysis, uploads what it wrote and records `cancelled`."""

from __future__ import annotations

import time

import pytest

from ncaas_dev.blueprint import LoadedBlueprint
from ncaas_dev.containers import Engine
from ncaas_dev.launchers.sibling import runner_filters

from ..jobs import Lab
from ..test_cancel import cancel_one_by_alice, wait_running
from .conftest import Stack

pytestmark = pytest.mark.integration


def test_a_cancel_file_stops_a_sibling_runner(
    stack: Stack, compose_probe: LoadedBlueprint, engine: Engine
) -> None:
    lab = Lab(stack.storage, compose_probe.blueprint.analysis)
    config = lab.config(lines=1, sleep=50)
    job = lab.wait_job(lab.submit(dataname=lab.dataset(), configname=config), timeout=120)
    wait_running(lab, engine, job, timeout=120)
    final, name = cancel_one_by_alice(lab, engine, job)
    assert any("runner stopped by SIGTERM" in e.message for e in final.events)
    assert lab.storage.head(lab.bucket, lab.paths(job).outputs(name) + "facts.json")
    filters = runner_filters(stack.settings.state_dir, lab.bucket)
    deadline = time.monotonic() + 30  # the runner ended too (it exits after its last write)
    while engine.client.containers.list(filters=filters):
        assert time.monotonic() < deadline, "the runner container still runs"
        time.sleep(0.2)
