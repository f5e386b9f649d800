"""status.json's job state and certificate.txt's NeuroCAAS shape."""

from __future__ import annotations

import pytest

from ncaas_dev.status import DatasetStatus, JobStatus, State, reject, render_certificate, settle


def job(**datasets: tuple[State, str | None]) -> JobStatus:
    status = JobStatus(
        job="job_20261124T203000Z",
        analysis="spike-detect",
        group="labA",
        submission="labA/submissions/abc_submit.json",
    )
    for name, (state, reason) in datasets.items():
        status.datasets[name] = DatasetStatus(key=f"labA/inputs/{name}", state=state, reason=reason)
    return status


OK = (State.SUCCEEDED, None)
QUEUED = (State.QUEUED, None)
RUNNING = (State.RUNNING, None)
CRASHED = (State.FAILED, "the analysis exited with code 3")
SLOW = (State.TIMED_OUT, "killed at the timeout")


def test_new_job_is_queued_with_iso_utc_times() -> None:
    status = job(rec1=QUEUED)
    assert status.state == State.QUEUED and status.reason is None and status.finished is None
    assert status.created.endswith("Z") and "T" in status.created


def test_all_succeeded_is_succeeded() -> None:
    status = job(rec1=OK, rec2=OK)
    settle(status)
    assert status.state == State.SUCCEEDED and status.reason is None
    assert status.finished is not None


def test_one_failed_dataset_fails_the_job_and_names_it() -> None:
    status = job(rec1=OK, rec2=CRASHED)
    settle(status)
    assert status.state == State.FAILED
    assert (
        status.reason == "1 of 2 dataset(s) did not succeed; rec2: the analysis exited with code 3"
    )
    assert status.finished is not None


def test_single_failed_dataset_reason() -> None:
    status = job(**{"rec1.bin": CRASHED})
    settle(status)
    assert status.state == State.FAILED
    assert status.reason == "rec1.bin: the analysis exited with code 3"


def test_timed_out_dataset_times_out_the_job() -> None:
    status = job(rec1=OK, rec2=SLOW)
    settle(status)
    assert status.state == State.TIMED_OUT
    assert status.reason is not None and "rec2: killed at the timeout" in status.reason


def test_failed_outranks_timed_out() -> None:
    status = job(rec1=SLOW, rec2=CRASHED)
    settle(status)
    assert status.state == State.FAILED
    assert status.reason is not None and status.reason.startswith("2 of 2 dataset(s)")


@pytest.mark.parametrize(
    "datasets",
    [
        {"rec1": RUNNING, "rec2": QUEUED},
        {"rec1": OK, "rec2": QUEUED},
        {"rec1": CRASHED, "rec2": RUNNING},
        {"rec1": RUNNING},
    ],
)
def test_running_while_any_dataset_is_not_finished(
    datasets: dict[str, tuple[State, str | None]],
) -> None:
    status = job(**datasets)
    settle(status)
    assert status.state == State.RUNNING
    assert status.finished is None


def test_queued_while_nothing_started() -> None:
    status = job(rec1=QUEUED, rec2=QUEUED)
    settle(status)
    assert status.state == State.QUEUED and status.finished is None


def test_rejected_stays_rejected() -> None:
    status = job(rec1=OK)
    reject(status, "'dataname' 'labB/inputs/x' is outside your group's prefix 'labA/'")
    settle(status)
    assert status.state == State.REJECTED
    assert status.reason is not None and "outside your group's prefix" in status.reason
    assert status.finished is not None
    assert status.events[-1].message.startswith("rejected: ")


def test_a_rejection_ends_every_dataset_saying_why() -> None:
    status = job(rec1=QUEUED, rec2=RUNNING, rec3=CRASHED)
    reject(status, "budget exceeded: spent $1.00 of $1.00")
    settle(status)
    assert status.state == State.REJECTED and status.all_datasets_done
    for name in ("rec1", "rec2"):
        ds = status.datasets[name]
        assert ds.state == State.REJECTED and ds.reason == status.reason and ds.finished
    assert status.datasets["rec3"].state == State.FAILED  # an ending is never rewritten
    certificate = render_certificate(status)
    assert "DATANAME: rec1 | STATUS: rejected" in certificate
    assert "STATUS: queued" not in certificate and "STATUS: running" not in certificate


def test_finished_time_is_kept_once_set() -> None:
    status = job(rec1=OK)
    status.finished = "2026-11-24T20:31:05Z"
    settle(status)
    assert status.finished == "2026-11-24T20:31:05Z"


def test_terminal_states() -> None:
    assert {s for s in State if s.terminal} == {
        State.SUCCEEDED,
        State.FAILED,
        State.TIMED_OUT,
        State.REJECTED,
        State.CANCELLED,
    }


def test_certificate_has_the_neurocaas_dataset_line() -> None:
    status = job(**{"rec1.bin": RUNNING})
    status.datasets["rec1.bin"].started = "2026-11-24T20:31:05Z"
    status.datasets["rec1.bin"].last_output = "channel 3 of 16"
    text = render_certificate(status)
    assert (
        "DATANAME: rec1.bin | STATUS: running | TIME: 2026-11-24T20:31:05Z | "
        "LAST OUTPUT: channel 3 of 16\n"
    ) in text
    assert "REASON:" not in text


def test_certificate_dataset_lines_come_before_the_dispatcher_log() -> None:
    status = job(**{"rec1.bin": OK, "rec2.bin": QUEUED})
    status.log("submission accepted: 2 dataset(s)")
    status.log("rec1.bin: analysis started on docker:3f2a")
    text = render_certificate(status)
    head, log = text.split("DISPATCHER LOG:\n")
    assert "DATANAME: rec1.bin | STATUS: succeeded" in head
    assert "DATANAME: rec2.bin | STATUS: queued" in head
    lines = log.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("Z submission accepted: 2 dataset(s)")
    assert lines[1].endswith("Z rec1.bin: analysis started on docker:3f2a")
    assert lines[0][:4].isdigit()


def test_certificate_last_output_stays_on_one_line() -> None:
    status = job(**{"rec1.bin": RUNNING})
    status.datasets["rec1.bin"].last_output = "first\nsecond"
    (line,) = [ln for ln in render_certificate(status).splitlines() if ln.startswith("DATANAME")]
    assert line.endswith("LAST OUTPUT: first second")


def test_certificate_says_why_a_queued_dataset_waits() -> None:
    status = job(**{"rec1.bin": (State.QUEUED, "waiting for a free slot")})
    assert "STATUS: queued" in render_certificate(status)
    assert "| WAITING: waiting for a free slot" in render_certificate(status)


def test_certificate_gives_the_reason_on_failure() -> None:
    status = job(**{"rec1.bin": CRASHED})
    settle(status)
    text = render_certificate(status)
    assert "STATE: failed" in text
    assert text.rstrip("\n").endswith("REASON: rec1.bin: the analysis exited with code 3")


def test_certificate_gives_the_reason_on_rejection() -> None:
    status = job()
    reject(status, "input labA/inputs/x does not exist: upload it first")
    text = render_certificate(status)
    assert "(none)" in text
    assert "rejected: input labA/inputs/x does not exist" in text.split("DISPATCHER LOG:")[1]
    assert "REASON: input labA/inputs/x does not exist: upload it first" in text


def test_status_json_shape() -> None:
    status = job(**{"rec1.bin": OK})
    settle(status)
    doc = status.model_dump(mode="json")
    assert {"job", "analysis", "group", "submission", "state", "reason"} <= set(doc)
    assert {"created", "updated", "finished", "datasets", "provenance"} <= set(doc)
    assert doc["state"] == "succeeded"
    assert doc["datasets"]["rec1.bin"]["state"] == "succeeded"
    assert JobStatus.model_validate(doc) == status
