"""A group's jobs are listed newest first, a page at a time, reading only that page's statuses;
a dataset's log is followed in whole lines (the code Job.watch and the web's SSE share)."""

from __future__ import annotations

import secrets

import pytest

from ncaas_dev.api.follow import LogTail
from ncaas_dev.client import AnalysisClient
from ncaas_dev.layout import JobPaths
from ncaas_dev.status import JobStatus
from ncaas_dev.storage import Storage

pytestmark = pytest.mark.integration


@pytest.fixture
def client(storage: Storage, settings: object) -> AnalysisClient:
    bucket = f"ncaas-list-{secrets.token_hex(4)}"
    storage.ensure_bucket(bucket, "us-east-1")
    return AnalysisClient(storage, bucket)


def _job(client: AnalysisClient, name: str) -> None:
    doc = JobStatus(job=name, analysis=client.bucket, group="labA", submission="labA/s.json")
    client.storage.put_json(client.bucket, JobPaths("labA", name).status, doc.model_dump())


def test_jobs_come_newest_first_a_page_at_a_time(client: AnalysisClient) -> None:
    names = [f"job_202612{d:02d}T120000Z" for d in range(1, 13)]
    for name in sorted(names, key=lambda n: secrets.token_hex(2)):  # written in any order
        _job(client, name)
    newest = sorted(names, reverse=True)
    assert client.job_names("labA") == newest
    first = client.jobs("labA", limit=5)
    assert [s.job for s in first] == newest[:5]
    second = client.jobs("labA", limit=5, before=first[-1].job)
    assert [s.job for s in second] == newest[5:10]
    assert [s.job for s in client.jobs("labA", before=newest[9])] == newest[10:]
    assert client.jobs("labA", before=newest[-1]) == []


def test_only_the_page_s_statuses_are_read(
    client: AnalysisClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    for day in range(1, 21):
        _job(client, f"job_202612{day:02d}T120000Z")
    read: list[str] = []
    status = client.status
    monkeypatch.setattr(client, "status", lambda g, j: read.append(j) or status(g, j))
    client.jobs("labA", limit=3)
    assert sorted(read) == ["job_20261218T120000Z", "job_20261219T120000Z", "job_20261220T120000Z"]


def test_a_log_is_followed_in_whole_lines(client: AnalysisClient) -> None:
    key = JobPaths("labA", "job_1").log("rec.bin")
    tail = LogTail(client, "labA", "job_1", "rec.bin")
    assert tail.poll() == []  # no log yet
    client.storage.put_bytes(client.bucket, key, b"one\ntw")
    assert tail.poll() == ["one"]  # "tw" is not a line yet
    client.storage.put_bytes(client.bucket, key, b"one\ntwo\n\nthr")
    assert tail.poll() == ["two", ""]
    assert tail.poll() == []
    resumed = LogTail(client, "labA", "job_1", "rec.bin", offset=tail.offset)  # Last-Event-ID
    assert resumed.poll(ended=True) == ["thr"]  # the job ended: the rest, unfinished line too
    assert tail.poll(ended=True) == ["thr"] and tail.offset == len(b"one\ntwo\n\nthr")
