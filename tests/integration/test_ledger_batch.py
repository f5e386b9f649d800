"""Parallel admissions reserve in one group's ledger together, and the budget still holds."""

from __future__ import annotations

import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from ncaas_dev.aws import s3_client
from ncaas_dev.budget import Budget, Projection, ReservationClash, ReservationRequest
from ncaas_dev.dispatch.ledger import ReservationBatcher
from ncaas_dev.settings import Settings
from ncaas_dev.storage import Storage

pytestmark = pytest.mark.integration
ONE_DATASET = Projection(
    datasets=1, instance_type="m5.xlarge", price_per_hour=0.192, timeout_seconds=3600
)


def counting_storage(settings: Settings) -> tuple[Storage, dict[str, int]]:
    """Storage whose client counts ledger writes (PutObject on a ledger key)."""
    client = s3_client(settings)
    counts = {"ledger_puts": 0}
    lock = threading.Lock()

    def count(params: Any, **_: Any) -> None:
        if "ledger" in str(params.get("Key", "")):
            with lock:
                counts["ledger_puts"] += 1

    client.meta.events.register("before-parameter-build.s3.PutObject", count)
    return Storage(client, settings.endpoint_url), counts


def test_racing_reservations_fit_the_budget_in_fewer_writes(settings: Settings) -> None:
    storage, counts = counting_storage(settings)
    bucket = f"ncaas-ledger-{secrets.token_hex(4)}"
    storage.ensure_bucket(bucket, settings.region)
    limit = ONE_DATASET.usd * 3.5  # room for three
    batcher = ReservationBatcher(storage)
    requests = [
        ReservationRequest(f"job_{i}", ["d.bin"], ONE_DATASET, limit, f"labA/submissions/{i}")
        for i in range(16)
    ]
    start = threading.Barrier(len(requests))

    def reserve(request: ReservationRequest) -> str | None:
        start.wait()
        return batcher.reserve(bucket, "labA", request)

    with ThreadPoolExecutor(len(requests)) as pool:
        answers = list(pool.map(reserve, requests))
    assert sum(answer is None for answer in answers) == 3, answers
    assert all("budget" in a for a in answers if a is not None), answers
    ledger = Budget(storage, bucket).read("labA")
    assert len(ledger.reserved) == 3
    assert counts["ledger_puts"] < len(requests), counts  # written together, not one by one


def test_a_name_clash_is_raised_to_its_own_admission_only(settings: Settings) -> None:
    storage, _ = counting_storage(settings)
    bucket = f"ncaas-ledger-{secrets.token_hex(4)}"
    storage.ensure_bucket(bucket, settings.region)
    batcher = ReservationBatcher(storage)
    first = ReservationRequest("job_x", ["d.bin"], ONE_DATASET, 100, "labA/submissions/a")
    assert batcher.reserve(bucket, "labA", first) is None
    other = ReservationRequest("job_x", ["d.bin"], ONE_DATASET, 100, "labA/submissions/b")
    with pytest.raises(ReservationClash):
        batcher.reserve(bucket, "labA", other)
    fine = ReservationRequest("job_y", ["d.bin"], ONE_DATASET, 100, "labA/submissions/b")
    assert batcher.reserve(bucket, "labA", fine) is None
