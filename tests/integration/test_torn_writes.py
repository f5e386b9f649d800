"""A write cut off mid-body leaves the object it meant to replace whole, and one damaged object
never stops the dispatcher.

LocalStack 4.13, unlike S3, destroyed the object when a write to its key failed: a runner
SIGKILLed while it wrote its status.json left a job nobody could read, and the dispatcher's
start-up sweep then failed on it at every restart (localstack/s3_atomic_writes.py).
"""

from __future__ import annotations

import json
from dataclasses import replace
from urllib.parse import urlsplit

import pytest

from ncaas_dev.aws import s3_client
from ncaas_dev.blueprint import LoadedBlueprint
from ncaas_dev.budget import Ledger, Reservation, ledger_key
from ncaas_dev.errors import NcaasError
from ncaas_dev.jobstore import JobStore
from ncaas_dev.layout import JobPaths
from ncaas_dev.settings import Settings
from ncaas_dev.status import JobStatus, State
from ncaas_dev.storage import Storage

from .cutting_proxy import cutting_proxy
from .test_analysis_outcomes import variant_lab
from .test_limits import launches
from .test_restart import (  # noqa: F401 (restarts_dispatcher: a fixture)
    abandoned_launch,
    dead_owner,
    restart_and_wait_for_the_sweep,
    restarts_dispatcher,
    seconds_ago,
)

pytestmark = pytest.mark.integration

BODY = json.dumps({"version": "new", "pad": "x" * 4000}).encode()


def upstream(settings: Settings) -> tuple[str, int]:
    parts = urlsplit(settings.endpoint_url or "")
    assert parts.hostname and parts.port
    return parts.hostname, parts.port


def test_a_write_cut_off_mid_body_keeps_the_last_whole_version(
    storage: Storage, settings: Settings, probe: LoadedBlueprint
) -> None:
    lab = variant_lab(storage, settings, probe, "cut")
    key = JobPaths("labA", "job_cut").status
    storage.put_json(lab.bucket, key, {"version": "old"})
    with cutting_proxy(upstream(settings), body_bytes=100) as url:
        cut = Storage(s3_client(replace(settings, endpoint_url=url)), url)
        with pytest.raises(NcaasError):
            cut.put_bytes(lab.bucket, key, BODY, content_type="application/json")
        with pytest.raises(NcaasError):
            cut.put_bytes(lab.bucket, key + ".new", BODY, content_type="application/json")
    assert storage.get_json(lab.bucket, key)[0] == {"version": "old"}
    assert storage.head(lab.bucket, key + ".new") is None  # no half of it


def test_an_unreadable_status_in_one_analysis_does_not_stop_the_sweep_of_another(
    storage: Storage,
    settings: Settings,
    probe: LoadedBlueprint,
    restarts_dispatcher: None,  # noqa: F811
) -> None:
    damaged = variant_lab(storage, settings, probe, "damaged")  # swept before "dz"
    torn = JobStatus(
        job="job_torn",
        analysis=damaged.bucket,
        group="labA",
        submission="labA/submissions/t_submit.json",
    )
    assert JobStore(storage, damaged.bucket).create(torn)
    # Its reservation makes the sweep read it when it settles the group's budget.
    held = Ledger(group="labA", reserved={"job_torn/rec.bin": Reservation(usd=0.01)})
    storage.put_json(damaged.bucket, ledger_key("labA"), held.model_dump())
    # What a writer that failed halfway leaves where S3 is not atomic: not a status any more.
    storage.put_bytes(damaged.bucket, JobPaths("labA", "job_torn").status, b'{"job": "job_to')

    lab = variant_lab(storage, settings, probe, "dz")
    status, name = abandoned_launch(storage, lab, "job_after_the_damaged_one", dead_owner())
    try:
        restart_and_wait_for_the_sweep(settings)
        final = lab.wait_end(status.job, timeout=60)
        assert final.state == State.SUCCEEDED
        assert launches(final, name) == 1
        log = (settings.state_dir / "dispatcher.log").read_text(errors="replace")
        assert "budget: labA/job_torn: its status cannot be read now" in log
        ledger, _ = storage.get_json(damaged.bucket, ledger_key("labA"))
        assert "job_torn/rec.bin" in ledger["reserved"]  # kept until it can be settled
    finally:  # later sweeps of the session need not meet it again
        storage.delete(damaged.bucket, JobPaths("labA", "job_torn").status)
