"""Cancel requests: reading one, and what it does to a job's status (pure parts)."""

from __future__ import annotations

import pytest

from ncaas_dev.dispatch.cancel import BadRequest, CancelRequest, mark, parse_request
from ncaas_dev.layout import is_cancel_key, is_submission_key
from ncaas_dev.status import DatasetStatus, JobStatus, State, cancel_mark, settle

KEY = "labA/submissions/abc_cancel.json"
AT = "2026-12-02T13:40:05.123Z"


def job(*states: State) -> JobStatus:
    return JobStatus(
        job="job_1",
        analysis="a",
        group="labA",
        submission="labA/submissions/s_submit.json",
        datasets={
            f"d{i}": DatasetStatus(key=f"labA/inputs/d{i}", state=s) for i, s in enumerate(states)
        },
    )


def test_cancel_keys_are_apart_from_submission_keys() -> None:
    assert is_cancel_key(KEY) and not is_submission_key(KEY)
    assert not is_cancel_key("labA/submissions/abc_submit.json")
    assert not is_cancel_key("labA/inputs/abc_cancel.json")
    assert not is_cancel_key(".ncaas/submissions/abc_cancel.json")


def test_a_request_names_its_job_and_who_asked() -> None:
    request = parse_request(b'{"job": "job_1", "datasets": ["d0"], "by": "alice"}', KEY)
    assert request == CancelRequest("labA", "job_1", frozenset({"d0"}), "alice")
    assert request.reason(AT) == "cancelled by alice at 2026-12-02T13:40:05Z"
    anonymous = parse_request(b'{"job": "job_1"}', KEY)
    assert anonymous.datasets is None and anonymous.by == f"file {KEY}"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"nope", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b"{}", '"job" must be'),
        (b'{"job": "../job_1"}', '"job" must be'),
        (b'{"job": ".."}', '"job" must be'),
        (b'{"job": "job_1", "datasets": "d0"}', '"datasets" must be'),
        (b'{"job": "job_1", "datasets": [1]}', '"datasets" must be'),
    ],
)
def test_a_bad_request_says_what_is_wrong(body: bytes, says: str) -> None:
    with pytest.raises(BadRequest, match=says):
        parse_request(body, KEY)


def test_queued_datasets_end_at_once_running_ones_are_marked_ended_ones_stay() -> None:
    status = job(State.QUEUED, State.RUNNING, State.SUCCEEDED)
    request = CancelRequest("labA", "job_1", None, "alice")
    assert mark(status, request, AT) == ["d0", "d1"]
    d0, d1, d2 = status.datasets.values()
    assert (d0.state, d0.reason, d0.finished) == (State.CANCELLED, request.reason(AT), AT)
    assert d1.state == State.RUNNING and cancel_mark(d1) == request.reason(AT)
    assert d2.state == State.SUCCEEDED and cancel_mark(d2) is None
    settle(status)
    assert status.state == State.RUNNING  # d1 still stops; end.txt waits for its runner
    # The same request again (or a second one): nothing changes, nothing is logged.
    events = len(status.events)
    assert mark(status, CancelRequest("labA", "job_1", None, "bob"), AT) == []
    assert len(status.events) == events and cancel_mark(d1) == request.reason(AT)


def test_a_request_for_some_datasets_leaves_the_others() -> None:
    status = job(State.RUNNING, State.QUEUED)
    assert mark(status, CancelRequest("labA", "job_1", frozenset({"d1", "zz"}), "a"), AT) == ["d1"]
    assert status.datasets["d0"].state == State.RUNNING and not cancel_mark(status.datasets["d0"])
