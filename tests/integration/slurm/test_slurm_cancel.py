"""A cancel file on the SLURM launcher: the dispatcher scancels the dataset's SLURM job, SLURM
ends it CANCELLED, its runner uploads what the analysis wrote, the dataset ends cancelled
with who asked, and the analysis container is gone."""

from __future__ import annotations

import pytest

from ncaas_dev.budget import Budget
from ncaas_dev.containers import Engine

from ..test_cancel import cancel_one_by_alice
from ..test_limits import analysis_containers
from .conftest import MakeLab, jobs_of
from .test_slurm_launcher import running_in_slurm, wait_for

pytestmark = pytest.mark.integration


def test_a_cancel_file_scancels_the_slurm_job(slurm_lab: MakeLab, engine: Engine) -> None:
    lab = slurm_lab(run={"timeout": 300})
    job = lab.wait_job(lab.submit(dataname=lab.dataset(), configname=lab.config(sleep=120)))
    slurm_id = running_in_slurm(lab, job)
    _, name = cancel_one_by_alice(lab, engine, job)
    # SLURM's own record: the job was cancelled, not completed or lost.
    wait_for(
        "CANCELLED in SLURM",
        lambda: [j["state"] for j in jobs_of(lab.bucket) if j["id"] == slurm_id] == ["CANCELLED"],
        30,
    )
    outputs = lab.storage.list_objects(lab.bucket, lab.paths(job).outputs(name))
    assert any(o.key.endswith("/facts.json") for o in outputs)
    assert lab.storage.head(lab.bucket, lab.paths(job).end) is not None
    ledger = Budget(lab.storage, lab.bucket).read(lab.group)
    assert f"{job}/{name}" not in ledger.reserved and f"{job}/{name}" in ledger.charges
    assert analysis_containers(engine, lab.bucket) == []
