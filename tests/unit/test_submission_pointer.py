"""The pointer beside each submission (``{id}_submit.json.job``) and what it saves: an
admission's requests, and a cold sweep's reads of past claims. In moto's in-process S3."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from moto_world import BUCKET, aws, client  # noqa: F401 (aws: a fixture)

from ncaas_dev.analysis import AnalysisRecord, save_record
from ncaas_dev.blueprint import parse_blueprint
from ncaas_dev.client import AnalysisClient, Submitted
from ncaas_dev.dispatch.admission import Admission, Outcome
from ncaas_dev.dispatch.sweep import Sweeper
from ncaas_dev.events import ObjectCreated
from ncaas_dev.jobstore import JobStore
from ncaas_dev.layout import (
    SWEEP_RECORD,
    claim_key,
    is_submission_key,
    pointed_job,
    pointer_doc,
    submission_pointer_key,
)
from ncaas_dev.status import DatasetStatus, JobStatus, State
from ncaas_dev.storage import ObjectInfo, Storage

GROUP = "labA"
DATA = f"{GROUP}/inputs/d.bin"


class Counted:
    """Every S3 request the storage's client sends, by operation."""

    def __init__(self, storage: Storage) -> None:
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        storage.s3.meta.events.register("before-parameter-build.s3.*", self._one)

    def _one(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        with self._lock:
            self.calls.append((model.name, str(params.get("Key", params.get("Prefix", "")))))

    def take(self) -> list[tuple[str, str]]:
        with self._lock:
            calls, self.calls = self.calls, []
        return calls


@pytest.fixture
def storage(aws: None) -> Iterator[Storage]:  # noqa: F811
    storage = Storage(client("s3"), None)
    storage.s3.create_bucket(Bucket=BUCKET)
    doc = {"analysis": BUCKET, "groups": [{"name": GROUP, "users": []}, {"name": "labB"}]}
    blueprint = parse_blueprint(doc, "test")
    save_record(storage, AnalysisRecord(blueprint=blueprint, content_hash="0" * 64, image="x"))
    storage.put_bytes(BUCKET, DATA, b"x" * 100)
    yield storage


def submit(storage: Storage, name: str, group: str = GROUP) -> ObjectCreated:
    key = f"{group}/submissions/{name}_submit.json"
    body = json.dumps({"dataname": DATA.replace(GROUP, group, 1)}).encode()
    etag = storage.put_bytes(BUCKET, key, body)
    return ObjectCreated(BUCKET, key, etag, len(body))


def admit(storage: Storage, event: ObjectCreated, owner: str = "test:1") -> Outcome:
    return Admission(storage, "docker", owner).admit(event).outcome


def test_an_admission_leaves_a_pointer_that_names_its_job(storage: Storage) -> None:
    event = submit(storage, "a")
    outcome = admit(storage, event)
    assert outcome.action == "started" and outcome.job
    doc, _ = storage.get_json(BUCKET, submission_pointer_key(event.key))
    assert doc == {"job": outcome.job, "submission": event.key, "etag": event.etag}
    assert event.key.endswith("/a_submit.json")
    assert submission_pointer_key(event.key) == event.key + ".job"
    found = AnalysisClient(storage, BUCKET).job_of(Submitted(event.key, event.etag or ""))
    assert found == outcome.job
    # The claim stays the claim: it records who admitted the submission, not the job.
    claim, _ = storage.get_json(BUCKET, claim_key(event.key, event.etag or ""))
    assert claim["owner"] == "test:1" and claim["job"] is None


def test_a_rejected_submission_gets_its_pointer_too(storage: Storage) -> None:
    key = f"{GROUP}/submissions/bad_submit.json"
    etag = storage.put_bytes(BUCKET, key, b"{not json")
    outcome = admit(storage, ObjectCreated(BUCKET, key, etag, 9))
    assert outcome.action == "rejected"
    assert AnalysisClient(storage, BUCKET).job_of(Submitted(key, etag)) == outcome.job


def test_an_admission_costs_at_most_nine_requests_and_lists_nothing(storage: Storage) -> None:
    counted = Counted(storage)
    admit(storage, submit(storage, "warm"))  # the ledger exists from here on
    counted.take()
    outcome = admit(storage, submit(storage, "b"))
    calls = counted.take()
    assert outcome.action == "started"
    ops = [op for op, _ in calls]
    assert ops.count("PutObject") == 1 + 6, calls  # the submission itself, then six writes
    assert "ListObjectsV2" not in ops, calls  # a fresh job name is found free by writing it
    assert len(calls) - 1 <= 9, calls


def test_a_job_name_taken_moves_the_job_to_a_fresh_folder(storage: Storage) -> None:
    store = JobStore(storage, BUCKET)
    ds = DatasetStatus(key=DATA, state=State.SUCCEEDED)
    taken = JobStatus(
        job="job_T1",
        analysis=BUCKET,
        group=GROUP,
        submission="x",
        state=State.SUCCEEDED,
        datasets={"d.bin": ds},
    )
    assert store.create(taken)
    key = f"{GROUP}/submissions/t_submit.json"
    etag = storage.put_bytes(
        BUCKET, key, json.dumps({"dataname": DATA, "timestamp": "T1"}).encode()
    )
    outcome = admit(storage, ObjectCreated(BUCKET, key, etag, 1))
    assert outcome.job and outcome.job.startswith("job_T1_"), outcome
    status = store.read(GROUP, outcome.job)
    assert any("job_T1 already exists" in e.message for e in status.events)
    assert store.read(GROUP, "job_T1").submission == "x"  # untouched
    budget, _ = storage.get_json(BUCKET, f".ncaas/ledger/{GROUP}.json")
    assert f"{outcome.job}/d.bin" in budget["reserved"]  # the reservation moved with it
    assert "job_T1/d.bin" not in budget["reserved"]


@pytest.mark.parametrize(
    "doc",
    [
        {"job": "../../labB/results/job_x", "submission": "labA/submissions/a_submit.json"},
        {"job": "labB/results/job_x", "submission": "labA/submissions/a_submit.json"},
        {"job": "job_x", "submission": "labB/submissions/a_submit.json"},
        {"job": "..", "submission": "labA/submissions/a_submit.json"},
        {"job": "job_x", "submission": "labA/submissions/a_submit.json", "etag": "other"},
        ["job_x"],
        "job_x",
    ],
)
def test_a_pointer_names_a_bare_folder_of_its_own_submission_or_nothing(doc: Any) -> None:
    assert pointed_job(doc, "labA/submissions/a_submit.json", "e1") is None


def test_a_pointer_or_a_cancel_file_is_not_a_submission() -> None:
    key = "labA/submissions/a_submit.json"
    assert is_submission_key(key)
    assert not is_submission_key(submission_pointer_key(key))
    assert not is_submission_key("labA/submissions/a_cancel.json")
    assert pointed_job(pointer_doc(key, '"e1"', "job_1"), key, "e1") == "job_1"


def test_a_forged_pointer_does_not_stop_a_retaken_submission(storage: Storage) -> None:
    """A group's user can write the pointer: a dispatcher retaking an abandoned claim checks
    the job's own status before believing it."""
    other = submit(storage, "other")
    other_job = admit(storage, other).job
    event = submit(storage, "victim")
    abandoned = {"submission": event.key, "etag": event.etag, "job": None, "owner": "gone:1"}
    storage.put_json(BUCKET, claim_key(event.key, event.etag or ""), abandoned)
    forged = pointer_doc(event.key, event.etag or "", other_job or "")
    storage.put_json(BUCKET, submission_pointer_key(event.key), forged)
    outcome = admit(storage, event, owner="test:2")
    assert outcome.action == "started" and outcome.job != other_job, outcome


def test_a_cold_sweep_reads_no_claim_of_a_finished_submission(storage: Storage) -> None:
    for i in range(30):
        admit(storage, submit(storage, f"done{i:02}"))
    lost = submit(storage, "lost")  # its event never came
    handled: list[str] = []

    def handle(event: ObjectCreated) -> Outcome:
        handled.append(event.key)
        return Outcome(event.key, "started")

    counted = Counted(storage)
    Sweeper(storage, handle, lambda bucket, record, status: 0)._sweep_submissions(
        BUCKET, _record(storage), False
    )
    calls = counted.take()
    assert handled == [lost.key]
    claims = [key for op, key in calls if op == "GetObject" and key.startswith(".ncaas/claims/")]
    assert claims == [claim_key(lost.key, lost.etag or "")], calls  # the one without a pointer
    # the record, the sweep record's read and write, two listings (labA, labB), that one claim
    assert len(calls) <= 6, calls


def test_a_sweep_lists_only_after_its_mark_and_all_of_them_now_and_then(
    storage: Storage,
) -> None:
    for i in range(5):
        admit(storage, submit(storage, f"b-done{i}"))
    handled: list[str] = []

    def handle(event: ObjectCreated) -> Outcome:
        handled.append(event.key)
        return admit(storage, event)

    def cold_sweep(full_listing: bool = False, every: float = 600.0) -> list[str]:
        """A fresh Sweeper (a cold Lambda); returns the keys its listing of labA gave."""
        seen: list[str] = []
        real = storage.list_objects

        def listing(bucket: str, prefix: str, start_after: str | None = None) -> list[ObjectInfo]:
            found = real(bucket, prefix, start_after)
            seen.extend(o.key for o in found if GROUP in prefix)
            return found

        sweeper = Sweeper(storage, handle, lambda bucket, record, status: 0)
        sweeper.full_listing_every = every
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(storage, "list_objects", listing)
            sweeper._sweep_submissions(BUCKET, _record(storage), full_listing)
        return seen

    def mark() -> str:
        doc, _ = storage.get_json(BUCKET, SWEEP_RECORD)
        return str(doc["after"][GROUP])

    assert len(cold_sweep()) == 10  # the first lists all: 5 submissions and their pointers
    assert mark().endswith("b-done4_submit.json.job")  # its pointer
    assert cold_sweep() == []  # nothing after the mark
    early = submit(storage, "a-early")  # sorts before the mark; its event lost
    late = submit(storage, "c-late")  # sorts after it; its event lost too
    assert cold_sweep() == [late.key] and handled == [late.key]
    assert cold_sweep() == [late.key, submission_pointer_key(late.key)]  # now done
    assert mark() == submission_pointer_key(late.key)
    assert handled == [late.key]  # the early one not seen yet
    assert len(cold_sweep(every=0.0)) == 13 and handled == [late.key, early.key]  # its time came
    assert len(cold_sweep(full_listing=True)) == 14 and handled == [late.key, early.key]


@pytest.mark.parametrize(("pointer_age", "swept"), [(5.0, True), (0.0, False), (-5.0, False)])
def test_only_a_pointer_at_least_as_new_as_the_submission_counts(
    storage: Storage, monkeypatch: pytest.MonkeyPatch, pointer_age: float, swept: bool
) -> None:
    """A new version of a submission file is a new submission: an older pointer is not its."""
    event = submit(storage, "same")  # never admitted: no claim
    listed = [
        ObjectInfo(event.key, 10, event.etag or "", modified=1000.0),
        ObjectInfo(submission_pointer_key(event.key), 60, "p", modified=1000.0 - pointer_age),
    ]
    monkeypatch.setattr(
        storage,
        "list_objects",
        lambda bucket, prefix, start_after=None: listed if GROUP in prefix else [],
    )
    handled: list[str] = []

    def handle(event: ObjectCreated) -> Outcome:
        handled.append(event.key)
        return Outcome(event.key, "started")

    Sweeper(storage, handle, lambda bucket, record, status: 0)._sweep_submissions(
        BUCKET, _record(storage), False
    )
    assert handled == ([event.key] if swept else [])


def _record(storage: Storage) -> AnalysisRecord:
    from ncaas_dev.analysis import load_record

    record = load_record(storage, BUCKET)
    assert record is not None
    return record
