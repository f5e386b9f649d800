"""The index of open jobs (issue 13, defect 7): a sweep reads the open jobs only, in moto's
in-process S3. Finished jobs are written as status files directly, as a full bucket holds them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto_world import BUCKET, analysis_bucket, aws, client, provision, submit  # noqa: F401 (aws: a fixture)

from ncaas_dev.analysis import AnalysisRecord, save_record
from ncaas_dev.blueprint import parse_blueprint
from ncaas_dev.budget import Budget, Ledger, Reservation, ledger_key
from ncaas_dev.dispatch.admission import Outcome
from ncaas_dev.dispatch.dispatcher import Dispatcher
from ncaas_dev.dispatch.sweep import Sweeper
from ncaas_dev.events import ObjectCreated
from ncaas_dev.jobstore import JobStore
from ncaas_dev.launchers.ec2 import Ec2Launcher
from ncaas_dev.layout import (
    OPEN_INDEX_RECORD,
    SWEEP_RECORD,
    JobPaths,
    claim_key,
    open_marker,
    pointed_job,
    submission_pointer_key,
)
from ncaas_dev.settings import Settings
from ncaas_dev.status import DatasetStatus, JobStatus, State
from ncaas_dev.storage import AccessDenied, Storage

GROUP = "labA"


class CountingStorage(Storage):
    """Counts the status.json reads, the cost a sweep must keep small."""

    status_reads = 0

    def get_json(self, bucket: str, key: str) -> tuple[Any, str]:
        if key.endswith("/status.json"):
            self.status_reads += 1
        return super().get_json(bucket, key)


@pytest.fixture
def storage(aws: None) -> Iterator[CountingStorage]:  # noqa: F811
    storage = CountingStorage(client("s3"), None)
    analysis_bucket(storage)
    yield storage


def status(job: str, state: State) -> JobStatus:
    ds = DatasetStatus(key=f"{GROUP}/inputs/d.bin", state=state)
    return JobStatus(
        job=job, analysis=BUCKET, group=GROUP, submission="s", state=state, datasets={"d": ds}
    )


def write_directly(storage: Storage, job: str, state: State) -> None:
    """A job folder as a writer without the index leaves it (or a finished job, quickly)."""
    doc = status(job, state).model_dump(mode="json")
    storage.put_json(BUCKET, JobPaths(GROUP, job).status, doc)


class Sweep:
    def __init__(self, storage: CountingStorage) -> None:
        self.storage = storage
        self.waiting: list[str] = []
        self.sweeper = Sweeper(storage, self._no_submissions, self._queue)

    @staticmethod
    def _no_submissions(event: ObjectCreated) -> Outcome:
        raise AssertionError(f"no submission to handle: {event.key}")

    def _queue(self, bucket: str, record: AnalysisRecord, status: JobStatus) -> int:
        self.waiting.append(status.job)
        return 1

    def __call__(self) -> tuple[int, list[str]]:
        """One sweep: the status reads it made, and the jobs it offered to the scheduler."""
        self.storage.status_reads = 0
        self.waiting = []
        self.sweeper.sweep()
        return self.storage.status_reads, sorted(self.waiting)


def test_a_sweep_reads_only_the_open_jobs(storage: CountingStorage) -> None:
    sweep = Sweep(storage)
    assert sweep() == (0, [])  # a new bucket: its (empty) index is complete at once
    for i in range(40):
        write_directly(storage, f"job_done{i:02}", State.SUCCEEDED)
    store = JobStore(storage, BUCKET)
    assert store.create(status("job_open1", State.QUEUED))
    assert store.create(status("job_open2", State.RUNNING))
    assert Sweep(storage)() == (2, ["job_open1", "job_open2"])  # a cold sweep, too


def test_a_bucket_from_before_the_index_is_listed_once_then_indexed(
    storage: CountingStorage,
) -> None:
    for i in range(5):
        write_directly(storage, f"job_done{i}", State.FAILED)
    write_directly(storage, "job_open", State.QUEUED)
    sweep = Sweep(storage)
    reads, waiting = sweep()
    assert waiting == ["job_open"] and reads >= 6  # listed in full, once
    assert storage.head(BUCKET, OPEN_INDEX_RECORD) is not None
    assert storage.head(BUCKET, open_marker(GROUP, "job_open")) is not None
    assert sweep() == (1, ["job_open"])
    assert Sweep(storage)() == (1, ["job_open"])


def test_the_ender_drops_the_marker_and_a_marker_left_behind_costs_one_read(
    storage: CountingStorage,
) -> None:
    sweep = Sweep(storage)
    sweep()
    store = JobStore(storage, BUCKET)
    assert store.create(status("job_a", State.QUEUED))
    assert store.create(status("job_b", State.QUEUED))

    def finish(job: JobStatus) -> None:
        job.datasets["d"].state = State.SUCCEEDED

    store.update(GROUP, "job_a", finish)
    assert storage.head(BUCKET, open_marker(GROUP, "job_a")) is None
    # job_b's ender died between end.txt and dropping the marker.
    store.update(GROUP, "job_b", finish)
    store.mark_open(GROUP, "job_b")
    assert sweep() == (1, [])  # read once, found ended, dropped
    assert storage.head(BUCKET, open_marker(GROUP, "job_b")) is None
    assert sweep() == (0, [])


def test_the_sweep_still_settles_the_budget_of_a_job_that_ended_uncharged(
    storage: CountingStorage,
) -> None:
    sweep = Sweep(storage)
    sweep()
    # Ended (its writer died before charging), so not in the index; its reservation stays.
    write_directly(storage, "job_x", State.SUCCEEDED)
    ledger = Ledger(group=GROUP, reserved={"job_x/d": Reservation(usd=1.0)})
    storage.put_json(BUCKET, ledger_key(GROUP), ledger.model_dump(mode="json"))
    sweep()
    settled = Budget(storage, BUCKET).read(GROUP)
    assert settled.reserved == {} and "job_x/d" in settled.charges


@pytest.mark.usefixtures("aws")
def test_a_job_whose_creator_died_before_indexing_it_is_indexed_by_whoever_retakes_it(
    tmp_path: Path,
) -> None:
    s3, ec2, iam = client("s3"), client("ec2"), client("iam")
    storage = Storage(s3, None)
    provision(storage, ec2, iam)
    settings = Settings(endpoint_url=None, region="us-east-1", state_dir=tmp_path)
    event = submit(storage)
    first = Dispatcher(storage, Ec2Launcher(settings, storage, ec2, iam), None, "us-east-1")
    job = first.handle(event).job or ""
    # The first dispatcher died after creating status.json, before the marker and the pointer.
    storage.delete(BUCKET, open_marker(GROUP, job))
    storage.delete(BUCKET, submission_pointer_key(event.key))
    claim = claim_key(event.key, event.etag)
    storage.put_json(BUCKET, claim, {"submission": event.key, "etag": event.etag, "job": None})
    # Its own sweep saw the submission done; one that died before the pointer marks nothing.
    storage.delete(BUCKET, SWEEP_RECORD)

    second = Dispatcher(storage, Ec2Launcher(settings, storage, ec2, iam), None, "us-east-1")
    second.sweep()
    assert storage.head(BUCKET, open_marker(GROUP, job)) is not None
    pointer, _ = storage.get_json(BUCKET, submission_pointer_key(event.key))
    assert pointed_job(pointer, event.key, event.etag) == job


class OneBucketDenied(CountingStorage):
    """Every read in BUCKET is refused, as for an analysis whose objects this role cannot read."""

    def get_json(self, bucket: str, key: str) -> tuple[Any, str]:
        if bucket == BUCKET:
            raise AccessDenied(f"s3://{bucket}/{key}: access denied")
        return super().get_json(bucket, key)


def test_an_analysis_the_sweep_cannot_read_does_not_stop_the_others(
    storage: CountingStorage, caplog: pytest.LogCaptureFixture
) -> None:
    other = f"{BUCKET}-after"
    storage.s3.create_bucket(Bucket=other)
    doc = {"analysis": other, "groups": [{"name": GROUP, "users": []}]}
    save_record(
        storage,
        AnalysisRecord(blueprint=parse_blueprint(doc, "t"), content_hash="0" * 64, image="x"),
    )
    waiting = status("job_waiting", State.QUEUED).model_copy(update={"analysis": other})
    assert JobStore(storage, other).create(waiting)
    denied = OneBucketDenied(storage.s3, None)
    queued: list[str] = []

    def queue(bucket: str, record: AnalysisRecord, status: JobStatus) -> int:
        queued.append(f"{bucket}/{status.job}")
        return 1

    assert Sweeper(denied, Sweep._no_submissions, queue).sweep() == 1
    assert queued == [f"{other}/job_waiting"]
    assert f"sweep: {BUCKET}: skipped this time" in caplog.text
