"""The admissions of one batch share one read of their analysis's record, and never use a
record read before their event arrived. In moto's in-process S3."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from moto_world import BUCKET, aws, client  # noqa: F401 (aws: a fixture)
from test_submission_pointer import DATA, GROUP, Counted, submit

from ncaas_dev.analysis import AnalysisRecord, save_record
from ncaas_dev.blueprint import parse_blueprint
from ncaas_dev.dispatch.admission import Admission, Admitted
from ncaas_dev.layout import BLUEPRINT_RECORD
from ncaas_dev.storage import Storage


def record(cap: int) -> AnalysisRecord:
    doc = {
        "analysis": BUCKET,
        "groups": [{"name": GROUP, "users": []}],
        "limits": {"max_concurrent_jobs": cap},
    }
    return AnalysisRecord(blueprint=parse_blueprint(doc, "test"), content_hash="0" * 64, image="x")


@pytest.fixture
def storage(aws: None) -> Iterator[Storage]:  # noqa: F811
    storage = Storage(client("s3"), None)
    storage.s3.create_bucket(Bucket=BUCKET)
    save_record(storage, record(cap=1))
    storage.put_bytes(BUCKET, DATA, b"x" * 100)
    yield storage


def admit_together(
    storage: Storage, admission: Admission, count: int
) -> tuple[list[Admitted], list[tuple[str, str]]]:
    """``count`` submissions admitted as one batch (an SQS receive): what each became, and the
    S3 requests of the admissions."""
    counted = Counted(storage)
    events = [submit(storage, f"b{i}") for i in range(count)]
    counted.take()
    received = time.monotonic()
    with ThreadPoolExecutor(count) as pool:
        admitted = list(pool.map(lambda e: admission.admit(e, received), events))
    return admitted, counted.take()


def test_a_batch_reads_the_record_once_and_the_next_batch_reads_it_again(
    storage: Storage,
) -> None:
    admission = Admission(storage, "docker", "test:1")
    admitted, calls = admit_together(storage, admission, 6)
    reads = [k for op, k in calls if op == "GetObject" and k == BLUEPRINT_RECORD]
    assert len(reads) == 1
    assert {a.record.blueprint.limits.max_concurrent_jobs for a in admitted if a.record} == {1}

    save_record(storage, record(cap=3))  # re-provisioned, then a submission: a new batch
    later = submit(storage, "after")
    again = admission.admit(later, time.monotonic())
    assert again.record is not None and again.record.blueprint.limits.max_concurrent_jobs == 3


def test_an_event_without_a_batch_time_always_reads(storage: Storage) -> None:
    admission = Admission(storage, "docker", "test:1")
    counted = Counted(storage)
    for i in range(2):
        admission.admit(submit(storage, f"one{i}"))
    reads = [k for op, k in counted.take() if op == "GetObject" and k == BLUEPRINT_RECORD]
    assert len(reads) == 2
