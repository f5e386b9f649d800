"""The Batch launcher's bookkeeping against a scripted Batch (S3 in moto's in-process mock):
who retries an interruption, what a restarted dispatcher adopts. The real server:
tests/integration/batch/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from moto_world import aws, client  # noqa: F401 (aws: a fixture)

from ncaas_dev.analysis import AnalysisRecord, save_record
from ncaas_dev.blueprint import parse_blueprint
from ncaas_dev.jobstore import JobStore
from ncaas_dev.launchers.base import DatasetTask
from ncaas_dev.launchers.batch import BatchLauncher
from ncaas_dev.launchers.batchjob import TASK_ENV, job_name
from ncaas_dev.settings import Settings
from ncaas_dev.status import DatasetStatus, JobStatus, State
from ncaas_dev.storage import Storage

BUCKET = "spike-batch"
QUEUE = f"ncaas-{BUCKET}"


class FakeBatch:
    """Batch as ListJobs/DescribeJobs/SubmitJob see it: jobs by id, in one queue."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.submitted: list[dict[str, Any]] = []

    def add(self, job_id: str, name: str, status: str, task: DatasetTask, **kw: Any) -> None:
        env = [{"name": TASK_ENV, "value": task.model_dump_json()}]
        self.jobs[job_id] = {"jobId": job_id, "jobName": name, "status": status,
                             "createdAt": len(self.jobs), "container": {"environment": env},
                             **kw}  # fmt: skip

    def describe_job_queues(self, **_: Any) -> dict[str, Any]:
        return {"jobQueues": [{"jobQueueName": QUEUE, "computeEnvironmentOrder": []}]}

    def describe_job_definitions(self, **_: Any) -> dict[str, Any]:
        return {"jobDefinitions": [{"status": "ACTIVE"}]}

    def list_jobs(self, **_: Any) -> dict[str, Any]:
        return {"jobSummaryList": [dict(j) for j in self.jobs.values()]}

    def describe_jobs(self, jobs: list[str]) -> dict[str, Any]:
        return {"jobs": [self.jobs[j] for j in jobs]}

    def submit_job(self, **kw: Any) -> dict[str, Any]:
        self.submitted.append(kw)
        job_id = f"j{len(self.jobs) + 1}"
        self.jobs[job_id] = {"jobId": job_id, "jobName": kw["jobName"], "status": "RUNNING",
                             "createdAt": len(self.jobs)}  # fmt: skip
        return {"jobId": job_id}


@pytest.fixture
def world(aws: None, tmp_path: Path) -> tuple[Storage, DatasetTask]:  # noqa: F811
    storage = Storage(client("s3"), None)
    storage.s3.create_bucket(Bucket=BUCKET)
    blueprint = parse_blueprint(
        {"analysis": BUCKET, "groups": [{"name": "labA"}], "batch": {"retries": 1}}, "test"
    )
    record = AnalysisRecord(blueprint=blueprint, content_hash="0" * 64, image="x", image_id="i")
    save_record(storage, record)
    status = JobStatus(job="job_1", analysis=BUCKET, group="labA", submission="s",
                       datasets={"d.bin": DatasetStatus(key="labA/inputs/d.bin",
                                                        state=State.RUNNING)})  # fmt: skip
    JobStore(storage, BUCKET).create(status)
    task = DatasetTask(bucket=BUCKET, group="labA", job="job_1", dataset="d.bin",
                       data_key="labA/inputs/d.bin", config_key=None, record=record,
                       endpoint_url=None, region="us-east-1")  # fmt: skip
    return storage, task


def launcher(storage: Storage, tmp_path: Path, batch: FakeBatch, local: bool) -> BatchLauncher:
    endpoint = "http://127.0.0.1:1" if local else None
    settings = Settings(endpoint_url=endpoint, state_dir=tmp_path)
    return BatchLauncher(settings, storage, batch=batch, iam=object())


def reclaimed(batch: FakeBatch, task: DatasetTask, attempt: int = 1) -> None:
    batch.add(f"old{attempt}", job_name(task, attempt), "FAILED", task,
              statusReason="Host EC2 (instance i-1) terminated.")  # fmt: skip


def test_locally_the_dispatcher_submits_the_next_attempt(
    world: tuple[Storage, DatasetTask], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ncaas_dev.launchers.batch.remove_containers", lambda task: 0)
    storage, task = world
    batch = FakeBatch()
    reclaimed(batch, task)
    ours = launcher(storage, tmp_path, batch, local=True)
    assert ours.reap() == []  # adopted the ended attempt, retried it
    assert [s["jobName"] for s in batch.submitted] == [job_name(task, 2)]
    ds = JobStore(storage, BUCKET).read("labA", "job_1").datasets["d.bin"]
    assert (ds.model_extra or {})["attempts"] == 2 and ds.runner == "batch:j2"
    assert ours.active(BUCKET) == 1


def test_on_aws_batch_retried_it_and_the_dispatcher_does_not(
    world: tuple[Storage, DatasetTask], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ncaas_dev.launchers.batch.remove_containers", lambda task: 0)
    storage, task = world
    batch = FakeBatch()
    reclaimed(batch, task)
    (finished,) = launcher(storage, tmp_path, batch, local=False).reap()
    assert batch.submitted == [] and finished.state == State.FAILED
    assert "Host EC2 (instance i-1) terminated." in finished.detail


def test_adoption_takes_the_newest_attempt_only(
    world: tuple[Storage, DatasetTask], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ncaas_dev.launchers.batch.remove_containers", lambda task: 0)
    storage, task = world
    batch = FakeBatch()
    reclaimed(batch, task)
    batch.add("new", job_name(task, 2), "RUNNING", task)
    ours = launcher(storage, tmp_path, batch, local=True)
    assert ours.reap() == [] and batch.submitted == []  # attempt 1 is history, 2 runs
    assert ours.active(BUCKET) == 1
    batch.jobs["new"]["status"] = "SUCCEEDED"
    JobStore(storage, BUCKET).update("labA", "job_1", _succeed)
    ours._polled = -1e9
    (finished,) = ours.reap()
    assert finished.runner == "batch:new" and ours.active(BUCKET) == 0


def _succeed(status: JobStatus) -> None:
    ds = status.datasets["d.bin"]
    ds.state, ds.exit_code = State.SUCCEEDED, 0
