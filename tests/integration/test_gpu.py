"""GPU parity, locally: a GPU blueprint's container asks Docker for the GPUs.

This machine has no NVIDIA runtime, so Docker's refusal of the device request is the proof that
the request was made; the dataset ends with a reason that says what to do.
"""

from __future__ import annotations

import pytest

from ncaas_dev.blueprint import LoadedBlueprint
from ncaas_dev.containers import Engine
from ncaas_dev.settings import Settings
from ncaas_dev.status import State
from ncaas_dev.storage import Storage

from .test_analysis_outcomes import variant_lab

pytestmark = pytest.mark.integration


def test_gpu_blueprint_requests_the_gpu_from_docker(
    storage: Storage, settings: Settings, probe: LoadedBlueprint, dispatcher: int, engine: Engine
) -> None:
    has_nvidia = "nvidia" in engine.client.info().get("Runtimes", {})
    lab = variant_lab(storage, settings, probe, "gpu", resources={"gpu": True})
    status = lab.run(dataname=lab.dataset(), configname=lab.config())
    (dataset,) = status.datasets.values()
    if has_nvidia:
        assert dataset.state == State.SUCCEEDED
    else:
        assert dataset.state == State.FAILED
        assert dataset.reason and "no GPU: the blueprint asks for one" in dataset.reason
        assert "NVIDIA container toolkit" in dataset.reason
