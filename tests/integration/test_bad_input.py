"""Every bad submission gets a rejection the user can read; the dispatcher keeps serving."""

from __future__ import annotations

import json

import pytest

from ncaas_dev.blueprint import LoadedBlueprint
from ncaas_dev.dispatch.dispatcher import Dispatcher
from ncaas_dev.events import ObjectCreated
from ncaas_dev.launchers.docker import DockerLauncher
from ncaas_dev.local.stack import PidFile
from ncaas_dev.settings import Settings
from ncaas_dev.status import State
from ncaas_dev.storage import Storage
from ncaas_dev.submission import MAX_SUBMISSION_BYTES

from .jobs import Lab, assert_no_dataset_left_open

pytestmark = pytest.mark.integration


@pytest.fixture
def lab(storage: Storage, probe: LoadedBlueprint, dispatcher: int) -> Lab:
    return Lab(storage, probe.blueprint.analysis)


def assert_rejected(lab: Lab, body: bytes, expect: str, group: str | None = None) -> None:
    submitted = lab.submit_raw(body, group=group)
    job = lab.wait_job(submitted)
    status = lab.wait_end(job, group=group)
    paths = lab.paths(job, group)
    assert status.state == State.REJECTED
    assert status.reason and expect in status.reason, status.reason
    certificate = lab.text(paths.certificate)
    assert "STATE: rejected" in certificate
    assert f"REASON: {status.reason}" in certificate
    assert "rejected" in lab.text(paths.end)
    assert_no_dataset_left_open(status)


@pytest.mark.parametrize(
    ("body", "expect"),
    [
        (b"{not json", "not valid JSON"),
        (b'["labA/inputs/x"]', "JSON object"),
        (json.dumps({"configname": "labA/configs/c.json"}).encode(), "no 'dataname'"),
        (
            json.dumps({"dataname": "labA/inputs/does-not-exist.bin"}).encode(),
            "/labA/inputs/does-not-exist.bin first",  # the full key to upload to
        ),
        (json.dumps({"dataname": "labB/inputs/theirs.bin"}).encode(), "outside your group"),
        (json.dumps({"dataname": "labA/inputs/../../labB/inputs/x"}).encode(), "'..'"),
        (json.dumps({"dataname": "/labA/inputs/x"}).encode(), "absolute path"),
        (json.dumps({"dataname": "s3://other-bucket/labA/x"}).encode(), "absolute path"),
        (json.dumps({"dataname": "labA/inputs/x", "timestamp": "../../x"}).encode(), "timestamp"),
    ],
    ids=[
        "bad-json",
        "not-object",
        "no-dataname",
        "missing-key",
        "other-group",
        "dotdot",
        "absolute",
        "s3-url",
        "bad-timestamp",
    ],
)
def test_bad_submission_is_rejected(lab: Lab, body: bytes, expect: str) -> None:
    assert_rejected(lab, body, expect)


def test_oversized_submission_is_rejected_without_reading_it_all(lab: Lab) -> None:
    body = json.dumps({"dataname": "labA/inputs/x", "pad": "x" * (MAX_SUBMISSION_BYTES * 4)})
    assert_rejected(lab, body.encode(), "over the")


def test_missing_config_is_rejected(lab: Lab) -> None:
    data = lab.dataset()
    body = json.dumps({"dataname": data, "configname": "labA/configs/nope.yaml"}).encode()
    assert_rejected(lab, body, "labA/configs/nope.yaml")


def test_unknown_group_is_rejected(lab: Lab) -> None:
    body = json.dumps({"dataname": "labZ/inputs/x.bin"}).encode()
    assert_rejected(lab, body, "group 'labZ' is not a user", group="labZ")


def test_other_groups_data_is_never_read(lab: Lab, storage: Storage) -> None:
    theirs = Lab(storage, lab.bucket, group="labB").dataset()
    body = json.dumps({"dataname": theirs}).encode()
    assert_rejected(lab, body, "outside your group's prefix 'labA/'")


def test_existing_job_folder_is_never_reused(lab: Lab) -> None:
    data = lab.dataset()
    first = lab.run(dataname=data, timestamp="20260101T000000Z-reuse")
    second = lab.run(dataname=data, timestamp="20260101T000000Z-reuse")
    assert first.job == "job_20260101T000000Z-reuse"
    assert second.job != first.job and second.job.startswith(first.job)
    assert second.state == first.state == State.SUCCEEDED
    assert any("already exists" in e.message for e in second.events)
    again = lab.client.status("labA", first.job)
    assert again.submission == first.submission and again.finished == first.finished


def test_repeated_event_starts_one_job(lab: Lab, settings: Settings) -> None:
    submitted = lab.submit(dataname=lab.dataset())
    job = lab.wait_job(submitted)
    event = ObjectCreated(lab.bucket, submitted.key, submitted.etag, None)
    second = Dispatcher(
        lab.storage, DockerLauncher(settings.state_dir), settings.endpoint_url, settings.region
    )
    outcomes = [second.handle(event).action for _ in range(3)]
    assert outcomes == ["duplicate"] * 3
    lab.wait_end(job)
    jobs_of_submission = [s for s in lab.client.jobs("labA") if s.submission == submitted.key]
    assert [s.job for s in jobs_of_submission] == [job]


def test_dispatcher_survives_all_of_it(lab: Lab, dispatcher: int, settings: Settings) -> None:
    lab.submit_raw(b"\x00\xff garbage")
    status = lab.run(dataname=lab.dataset())
    assert status.state == State.SUCCEEDED
    assert PidFile(settings.state_dir, "dispatcher").read().running
