"""certificate.txt exists from the admission on and follows status.json, except that a launch
claim whose runner announces itself leaves it to that runner's first write, which follows
within milliseconds. In moto's in-process S3."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto_world import BUCKET, analysis_bucket, aws, client, submit  # noqa: F401 (aws: a fixture)

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


class Launching:
    """A launcher that starts nothing; ``announces``: as the Docker launcher's runners do."""

    name = "docker"

    def __init__(self, announces: bool) -> None:
        self.runner_announces_itself = announces
        self.launched: list[DatasetTask] = []

    def launch(self, task: DatasetTask) -> str:
        self.launched.append(task)
        return "docker:pid1"

    def active(self, analysis: str) -> int:
        return 0

    def reap(self) -> list[Finished]:
        return []

    def cancel(self, task: DatasetTask, runner: str | None) -> None:
        pass

    def shutdown(self) -> None:
        pass


@pytest.fixture
def storage(aws: None) -> Iterator[CountingStorage]:  # noqa: F811
    storage = CountingStorage(client("s3"), None)
    analysis_bucket(storage)
    yield storage


def certificate(storage: Storage, job: str) -> str:
    return storage.get_bytes(BUCKET, JobPaths(GROUP, job).certificate)[0].decode()


@pytest.mark.parametrize("announces", [True, False])
def test_a_launch_claim_leaves_the_certificate_to_a_runner_that_announces_itself(
    storage: CountingStorage, announces: bool
) -> None:
    launcher = Launching(announces)
    job = Dispatcher(storage, launcher, None, "us-east-1").handle(submit(storage)).job or ""
    assert len(launcher.launched) == 1  # admitted, claimed and launched in one pass
    assert storage.certificates == (1 if announces else 3)  # admission (claim, launched)
    assert "STATUS: queued" in certificate(storage, job)

    def started(status: JobStatus) -> None:  # the runner's first write
        status.datasets["d.bin"].state = State.RUNNING

    JobStore(storage, BUCKET).update(GROUP, job, started)
    assert "STATUS: running" in certificate(storage, job)


def test_a_change_that_ends_the_job_always_writes_its_certificate(
    storage: CountingStorage,
) -> None:
    job = Dispatcher(storage, Launching(True), None, "us-east-1").handle(submit(storage)).job

    def failed(status: JobStatus) -> None:
        status.datasets["d.bin"].state = State.FAILED

    JobStore(storage, BUCKET).update(GROUP, job or "", failed, publish=False)
    assert "STATUS: failed" in certificate(storage, job or "")
