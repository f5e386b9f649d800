"""The pure parts: blueprint, submission, layout, status, events, outcome classification."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ncaas_dev.analysis import AnalysisRecord
from ncaas_dev.blueprint import Blueprint, load_blueprint, parse_memory
from ncaas_dev.containers import ExitInfo
from ncaas_dev.errors import BlueprintError
from ncaas_dev.events import records_from_s3_event, records_from_sqs_body
from ncaas_dev.launchers.base import DatasetTask
from ncaas_dev.layout import JobPaths, claim_key, is_submission_key
from ncaas_dev.runner import classify, container_spec
from ncaas_dev.status import DatasetStatus, JobStatus, State, reject, render_certificate, settle
from ncaas_dev.submission import MAX_SUBMISSION_BYTES, InvalidSubmission, parse_submission


def write_blueprint(folder: Path, text: str, dockerfile: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "blueprint.yaml").write_text(text)
    if dockerfile:
        (folder / "Dockerfile").write_text("FROM ncaas/base:bookworm\n")
    return folder


MINIMAL = "analysis: my-analysis\ngroups:\n  - name: labA\n"


def test_minimal_blueprint_gets_the_contract_defaults(tmp_path: Path) -> None:
    loaded = load_blueprint(write_blueprint(tmp_path, MINIMAL))
    bp = loaded.blueprint
    assert (bp.run.timeout, bp.run.network, bp.resources.cpus) == (3600, False, 2)
    assert bp.resources.memory == 4 * 1024**3
    assert (bp.cloud.region, bp.cloud.instance_type, bp.cloud.ami) == (
        "us-east-1",
        "m5.xlarge",
        None,
    )
    assert (bp.limits.max_concurrent_jobs, bp.limits.max_cost_usd) == (4, 300)
    assert bp.image.dockerfile == "Dockerfile" and bp.image_tag == "ncaas/my-analysis:latest"
    assert len(loaded.content_hash) == 64


@pytest.mark.parametrize(
    ("text", "field", "problem"),
    [
        ("analysis: My_Analysis\ngroups: [{name: labA}]\n", "analysis", "not a valid bucket"),
        ("analysis: ab\ngroups: [{name: labA}]\n", "analysis", "not a valid bucket"),
        ("analysis: a--b\ngroups: [{name: labA}]\n", "analysis", "not a valid bucket"),
        ("analysis: good-name\n", "groups", "required field is missing"),
        (MINIMAL + "run: {timout: 5}\n", "run.timout", "unknown field"),
        (MINIMAL + "run: {timeout: -1}\n", "run.timeout", "greater than 0"),
        (MINIMAL + "resources: {memory: lots}\n", "resources.memory", "not a size"),
        ("analysis: x-y\ngroups: [{name: 'lab A'}]\n", "groups[0].name", "not a group name"),
        ("analysis: x-y\ngroups: [{name: a}, {name: a}]\n", "(top level)", "duplicate group"),
        (
            MINIMAL + "image: {dockerfile: /etc/passwd}\n",
            "image.dockerfile",
            "inside the blueprint",
        ),
    ],
)
def test_bad_blueprint_names_file_field_and_problem(
    tmp_path: Path, text: str, field: str, problem: str
) -> None:
    with pytest.raises(BlueprintError) as caught:
        load_blueprint(write_blueprint(tmp_path, text))
    message = str(caught.value)
    assert str(tmp_path / "blueprint.yaml") in message
    assert f"field '{field}'" in message and problem in message
    assert caught.value.exit_code == 2


def test_invalid_yaml_gives_the_line(tmp_path: Path) -> None:
    with pytest.raises(
        BlueprintError, match=r"line 3 is not valid YAML: expected the node content"
    ):
        load_blueprint(write_blueprint(tmp_path, "analysis: x\ngroups: [\n  - :\n"))


def test_missing_dockerfile_and_missing_blueprint(tmp_path: Path) -> None:
    with pytest.raises(BlueprintError, match=r"'image.dockerfile': Dockerfile does not exist"):
        load_blueprint(write_blueprint(tmp_path / "a", MINIMAL, dockerfile=False))
    with pytest.raises(BlueprintError, match="no blueprint here"):
        load_blueprint(tmp_path / "nothing")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("4g", 4 * 1024**3), ("512m", 512 * 1024**2), ("1.5GiB", 1610612736), (1024, 1024)],
)
def test_parse_memory(value: object, expected: int) -> None:
    assert parse_memory(value) == expected


def submission(doc: object) -> bytes:
    return json.dumps(doc).encode()


def test_submission_single_key_and_list() -> None:
    one = parse_submission(submission({"dataname": "labA/inputs/a.bin"}), "labA")
    assert one.datanames == ("labA/inputs/a.bin",) and one.configname is None
    many = parse_submission(
        submission(
            {
                "dataname": ["labA/inputs/a.bin", "labA/inputs/b.bin", "labA/inputs/a.bin"],
                "configname": "labA/configs/p.yaml",
                "timestamp": "20261124T203000Z",
            }
        ),
        "labA",
    )
    assert many.datasets == {"a.bin": "labA/inputs/a.bin", "b.bin": "labA/inputs/b.bin"}
    assert (many.configname, many.timestamp) == ("labA/configs/p.yaml", "20261124T203000Z")


@pytest.mark.parametrize(
    ("raw", "expect"),
    [
        (b"{", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[]", "JSON object"),
        (submission({}), "no 'dataname'"),
        (submission({"dataname": []}), "non-empty list"),
        (submission({"dataname": 5}), "non-empty list"),
        (submission({"dataname": [5]}), "must be an S3 key"),
        (submission({"dataname": "labB/inputs/a"}), "outside your group's prefix"),
        (submission({"dataname": "labA/inputs/../x"}), "'..'"),
        (submission({"dataname": "labA//x"}), "empty path segment"),
        (submission({"dataname": "/labA/inputs/x"}), "absolute path"),
        (submission({"dataname": "s3://b/labA/inputs/x"}), "absolute path"),
        (submission({"dataname": "labA/inputs"}), "must point to a file"),
        (submission({"dataname": "labA/inputs/a\nb"}), "control characters"),
        (submission({"dataname": "labA/inputs/a", "extra": 1}), "unknown field"),
        (submission({"dataname": "labA/inputs/a", "timestamp": "a/b"}), "cannot name a folder"),
        (submission({"dataname": ["labA/x/a.bin", "labA/y/a.bin"]}), "share the file name"),
        (submission({"dataname": ["labA/i/x"] * 1001}), "at most 1000"),
        (b" " * (MAX_SUBMISSION_BYTES + 1), "over the"),
    ],
)
def test_bad_submissions_are_explained(raw: bytes, expect: str) -> None:
    with pytest.raises(InvalidSubmission, match=None) as caught:
        parse_submission(raw, "labA")
    assert expect in str(caught.value)


def test_layout_keys_follow_the_contract() -> None:
    paths = JobPaths("labA", "job_1")
    assert paths.status == "labA/results/job_1/logs/status.json"
    assert paths.certificate == "labA/results/job_1/logs/certificate.txt"
    assert paths.log("rec.bin") == "labA/results/job_1/logs/rec.bin.log"
    assert paths.outputs("rec.bin") == "labA/results/job_1/process_results/rec.bin/"
    assert paths.end == "labA/results/job_1/process_results/end.txt"
    assert is_submission_key("labA/submissions/x_submit.json")
    assert not is_submission_key("labA/results/job/x_submit.json")
    assert not is_submission_key("labA/submissions/deeper/x_submit.json")
    assert claim_key("k", '"abc"') == claim_key("k", "abc") != claim_key("k", "abd")


def job(*states: State) -> JobStatus:
    status = JobStatus(job="job_1", analysis="a-b", group="labA", submission="labA/submissions/s")
    for i, state in enumerate(states):
        status.datasets[f"d{i}"] = DatasetStatus(
            key=f"labA/inputs/d{i}", state=state, reason=None if state == State.SUCCEEDED else "bad"
        )
    return status


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ((State.SUCCEEDED, State.SUCCEEDED), State.SUCCEEDED),
        ((State.SUCCEEDED, State.FAILED), State.FAILED),
        ((State.TIMED_OUT, State.SUCCEEDED), State.TIMED_OUT),
        ((State.FAILED, State.TIMED_OUT), State.FAILED),
        ((State.RUNNING, State.SUCCEEDED), State.RUNNING),
        ((State.QUEUED, State.QUEUED), State.QUEUED),
    ],
)
def test_job_state_is_derived_from_its_datasets(states: tuple[State, ...], expected: State) -> None:
    status = job(*states)
    settle(status)
    assert status.state == expected
    assert (status.finished is not None) == expected.terminal
    if expected in (State.FAILED, State.TIMED_OUT):
        assert status.reason and "d" in status.reason and "bad" in status.reason


def test_rejected_stays_rejected_and_the_certificate_says_why() -> None:
    status = job()
    reject(status, "input not found: labA/inputs/x")
    settle(status)
    text = render_certificate(status)
    assert status.state == State.REJECTED
    assert "REASON: input not found: labA/inputs/x" in text and "rejected: input" in text


def test_certificate_keeps_neurocaas_shape() -> None:
    status = job(State.RUNNING)
    status.datasets["d0"].started = "2026-11-24T20:31:05Z"
    status.datasets["d0"].last_output = "step 3 of 9"
    status.log("d0: launched")
    text = render_certificate(status)
    assert (
        "DATANAME: d0 | STATUS: running | TIME: 2026-11-24T20:31:05Z | LAST OUTPUT: step 3 of 9"
        in text
    )
    assert "d0: launched" in text.split("DISPATCHER LOG:")[1]


def test_s3_event_keys_are_decoded_and_other_events_skipped() -> None:
    event = {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": "b"},
                    "object": {
                        "key": "labA/submissions/my+file%2Bx%20y_submit.json",
                        "eTag": "abc",
                        "size": 12,
                    },
                },
            },
            {
                "eventName": "ObjectRemoved:Delete",
                "s3": {"bucket": {"name": "b"}, "object": {"key": "k"}},
            },
            "garbage",
        ]
    }
    (record,) = records_from_s3_event(event)
    assert (record.bucket, record.key, record.etag, record.size) == (
        "b",
        "labA/submissions/my file+x y_submit.json",
        "abc",
        12,
    )
    assert records_from_s3_event({"Event": "s3:TestEvent"}) == []
    assert records_from_sqs_body("not json") == []


def task(**run: object) -> DatasetTask:
    blueprint = Blueprint.model_validate(
        {
            "analysis": "a-b",
            "groups": [{"name": "labA"}],
            "resources": {"memory": "1g"},
            "run": {"timeout": 7, "env": {"EXTRA": "1", "NCAAS_JOB": "spoofed"}, **run},
        }
    )
    record = AnalysisRecord(blueprint=blueprint, content_hash="h", image="ncaas/a-b:latest")
    return DatasetTask(
        bucket="a-b",
        group="labA",
        job="job_1",
        dataset="rec.bin",
        data_key="labA/inputs/rec.bin",
        config_key=None,
        record=record,
        endpoint_url=None,
        region="us-east-1",
    )


def test_classify_outcomes() -> None:
    t = task()
    assert classify(ExitInfo(0, False), t) == (State.SUCCEEDED, None)
    state, reason = classify(ExitInfo(3, False), t)
    assert state == State.FAILED and reason and "code 3" in reason
    state, reason = classify(ExitInfo(137, True), t)
    assert state == State.FAILED and reason and "out of memory" in reason and "1g" in reason
    state, reason = classify(None, t)
    assert state == State.TIMED_OUT and reason and "7 s" in reason


def test_container_spec_follows_the_contract(tmp_path: Path) -> None:
    spec = container_spec(task(), tmp_path)
    assert spec.environment["NCAAS_DATA"] == "/ncaas/input/rec.bin"
    assert spec.environment["NCAAS_CONFIG"] == ""
    assert spec.environment["NCAAS_JOB"] == "job_1" and spec.environment["EXTRA"] == "1"
    mounts = {m.target: m.read_only for m in spec.mounts}
    assert mounts == {"/ncaas/input": True, "/ncaas/output": False}
    assert spec.network is False and spec.memory == 1024**3
    assert container_spec(task(network=True), tmp_path).network is True
