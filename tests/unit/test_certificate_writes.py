"""certificate.txt is written once per change a reader can see: a job that launches at once
gets it from its runner's first write, not also from its admission and its launch claim; a
job that waits gets it from the dispatcher's pass. In moto's in-process S3."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto_world import BUCKET, aws, client, submit  # noqa: F401 (aws: a fixture)

from ncaas_dev.analysis import AnalysisRecord, save_record
from ncaas_dev.blueprint import parse_blueprint
from ncaas_dev.dispatch.dispatcher import Dispatcher
from ncaas_dev.jobstore import JobStore
from ncaas_dev.launchers.base import DatasetTask, Finished
from ncaas_dev.layout import JobPaths
from ncaas_dev.status import JobStatus, State
from ncaas_dev.storage import Storage

GROUP = "labA"


class CountingStorage(Storage):
    """Counts the certificate writes."""

    certificates = 0

    def put_text(self, bucket: str, key: str, text: str) -> str:
        if key.endswith("/certificate.txt"):
            self.certificates += 1
        return super().put_text(bucket, key, text)


class Announcing:
    """A launcher whose runner announces itself, as the Docker launcher's does."""

    name = "docker"
    runner_announces_itself = True

    def __init__(self) -> None:
        self.launched: list[DatasetTask] = []

    def launch(self, task: DatasetTask) -> str:
        self.launched.append(task)
        return "docker:pid1"

    def active(self, analysis: str) -> int:
        return len(self.launched)  # none ends: with max_concurrent_jobs 1, one job runs

    def reap(self) -> list[Finished]:
        return []

    def cancel(self, task: DatasetTask, runner: str | None) -> None:
        pass

    def shutdown(self) -> None:
        pass


@pytest.fixture
def storage(aws: None) -> Iterator[CountingStorage]:  # noqa: F811
    storage = CountingStorage(client("s3"), None)
    storage.s3.create_bucket(Bucket=BUCKET)
    doc = {
        "analysis": BUCKET,
        "groups": [{"name": GROUP, "users": []}],
        "limits": {"max_concurrent_jobs": 1},
    }
    blueprint = parse_blueprint(doc, "test")
    save_record(storage, AnalysisRecord(blueprint=blueprint, content_hash="0" * 64, image="x"))
    yield storage


def certificate(storage: Storage, job: str) -> str | None:
    try:
        return storage.get_bytes(BUCKET, JobPaths(GROUP, job).certificate)[0].decode()
    except Exception:
        return None


def test_a_job_that_launches_at_once_has_its_certificate_written_by_its_runner(
    storage: CountingStorage,
) -> None:
    dispatcher = Dispatcher(storage, Announcing(), None, "us-east-1")
    job = dispatcher.handle(submit(storage, "a")).job or ""
    assert storage.certificates == 0 and certificate(storage, job) is None
    # The runner's first write (here, as the runner makes it) publishes it.
    store = JobStore(storage, BUCKET)

    def started(status: JobStatus) -> None:
        status.datasets["d.bin"].state = State.RUNNING

    store.update(GROUP, job, started)
    assert storage.certificates == 1
    assert "STATUS: running" in (certificate(storage, job) or "")


def test_a_job_that_waits_for_a_slot_has_its_certificate_written_by_the_pass(
    storage: CountingStorage,
) -> None:
    dispatcher = Dispatcher(storage, Announcing(), None, "us-east-1")
    first = dispatcher.handle(submit(storage, "a")).job or ""
    second = dispatcher.handle(submit(storage, "b")).job or ""
    assert first != second
    assert certificate(storage, first) is None  # its runner writes it
    text = certificate(storage, second) or ""
    assert "WAITING: waiting for a free slot" in text and storage.certificates == 1


def test_a_change_that_ends_the_job_always_writes_its_certificate(
    storage: CountingStorage,
) -> None:
    dispatcher = Dispatcher(storage, Announcing(), None, "us-east-1")
    job = dispatcher.handle(submit(storage, "a")).job or ""

    def failed(status: JobStatus) -> None:
        status.datasets["d.bin"].state = State.FAILED

    JobStore(storage, BUCKET).update(GROUP, job, failed, publish=False)
    assert "STATUS: failed" in (certificate(storage, job) or "")
