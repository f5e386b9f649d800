"""What `compat: neurocaas` writes (pure): the certificate's block, the per-dataset status
JSON, the job folder's name; and the submission options checked at admission."""

from __future__ import annotations

import json

import pytest

from ncaas_dev.blueprint import parse_blueprint
from ncaas_dev.compat import neurocaas
from ncaas_dev.dispatch import options
from ncaas_dev.layout import JobPaths, dataset_name
from ncaas_dev.status import DatasetStatus, JobStatus, State, reject, render_certificate
from ncaas_dev.submission import parse_submission


def job(*states: State) -> JobStatus:
    status = JobStatus(job="job__spikes_20261124", analysis="spikes", group="labA", submission="s")
    neurocaas.mark_compat(status)
    for i, state in enumerate(states):
        status.datasets[f"rec{i}.bin"] = DatasetStatus(key=f"labA/inputs/rec{i}.bin", state=state)
    status.log("received submission s")
    return status


def test_the_certificate_has_exactly_two_dividers_around_the_dataname_lines() -> None:
    status = job(State.QUEUED, State.RUNNING, State.SUCCEEDED, State.FAILED)
    status.datasets["rec1.bin"].last_output = "epoch 3 ================ done"
    status.log("a step that prints ================ in its message")
    lines = neurocaas.render_certificate(status).splitlines()
    assert lines[0] == "PER ENVIRONMENT MONITORING:"
    assert [i for i, line in enumerate(lines) if line == neurocaas.DIVIDER] == [1, 6]
    assert sum("================" in line for line in lines) == 2
    assert lines[2].startswith("DATANAME: labA/inputs/rec0.bin | STATUS: INITIALIZING | TIME: ")
    assert "| STATUS: IN PROGRESS |" in lines[3] and lines[3].endswith(
        "LAST COMMAND: epoch 3 = done"
    )
    assert "| STATUS: SUCCESS |" in lines[4] and "| STATUS: FAILED |" in lines[5]
    assert lines[7].endswith("received submission s")


def test_the_dataset_status_file_holds_the_fields_neurocaas_clients_read() -> None:
    status = job(State.FAILED)
    ds = status.datasets["rec0.bin"]
    ds.exit_code, ds.reason, ds.runner = 3, "the analysis exited with code 3", "docker:ab12"
    ds.started, ds.finished = "2026-11-24T20:00:00.000Z", "2026-11-24T20:01:00.000Z"
    ds.std = ["one", "two"]  # type: ignore[attr-defined]
    doc = neurocaas.dataset_doc(status, "rec0.bin")
    assert doc == {
        "status": "FAILED",
        "reason": "the analysis exited with code 3",
        "input": "labA/inputs/rec0.bin",
        "instance": "docker:ab12",
        "job_start": "2026-11-24T20:00:00.000Z",
        "job_finish": "2026-11-24T20:01:00.000Z",
        "std": {"0": "one", "1": "two"},
    }
    json.dumps(doc)  # it is written as JSON
    assert JobPaths("labA", status.job).dataset_status("rec0.bin") == (
        "labA/results/job__spikes_20261124/logs/DATASET_NAME:rec0.bin_STATUS.txt"
    )


def test_a_success_says_its_exit_code_and_a_rejection_fails_every_dataset() -> None:
    status = job(State.SUCCEEDED)
    status.datasets["rec0.bin"].exit_code = 0
    assert neurocaas.dataset_doc(status, "rec0.bin")["reason"] == "exit code 0"
    rejected = job(State.QUEUED)
    reject(rejected, "input not found: labA/inputs/rec0.bin")
    doc = neurocaas.dataset_doc(rejected, "rec0.bin")
    assert doc["status"] == "FAILED" and doc["reason"].startswith("input not found")
    assert "| STATUS: FAILED |" in neurocaas.render_certificate(rejected)


def test_the_default_layout_is_untouched() -> None:
    status = JobStatus(job="job_1", analysis="a", group="labA", submission="s")
    assert not neurocaas.is_compat(status) and "layout" not in status.model_dump()
    assert render_certificate(status).startswith("NCAAS JOB CERTIFICATE: job_1")
    compat = job()
    assert JobStatus.model_validate(compat.model_dump(mode="json")).model_extra == {
        "layout": "neurocaas"
    }


def test_names() -> None:
    assert neurocaas.job_name("spikes", "20261124") == "job__spikes_20261124"
    assert neurocaas.duplicate_name("job__spikes_1").startswith("job__spikes_1_duplicate-")
    assert dataset_name("labA/inputs/tifs/") == "tifs" and dataset_name("labA/inputs/x") == "x"


def blueprint(**cloud: object):  # type: ignore[no-untyped-def]
    doc = {"analysis": "spikes", "groups": [{"name": "labA"}], "cloud": cloud}
    return parse_blueprint(doc, "test")


def test_instance_type_must_be_allowed() -> None:
    bp = blueprint(instance_type="m5.large", allowed_instance_types=["c5.xlarge"])
    sub = parse_submission(b'{"dataname": "labA/inputs/x", "instance_type": "c5.xlarge"}', "labA")
    assert options.instance_type(bp, sub).value == "c5.xlarge"
    plain = parse_submission(b'{"dataname": "labA/inputs/x"}', "labA")
    assert options.instance_type(bp, plain).value == "m5.large"
    big = parse_submission(b'{"dataname": "labA/inputs/x", "instance_type": "p5.48xlarge"}', "labA")
    problem = options.instance_type(bp, big).problem
    assert problem and "allowed: m5.large, c5.xlarge" in problem


@pytest.mark.parametrize(
    ("config", "value"),
    [
        (b"__duration__: 2\nother: 1\n", 120),
        (b'{"__duration__": 0.5}', 30),
        (b"__duration__: 1000\n", 3600),  # never past run.timeout
        (b"lines: 3\n", None),
        (b"\x00\xff binary", None),
        (b"- a list\n", None),
    ],
)
def test_duration_in_minutes_capped_at_run_timeout(config: bytes, value: int | None) -> None:
    checked = options.duration(config, "labA/configs/c.yaml", 3600)
    assert checked.problem is None and checked.value == value


BAD_DURATIONS = [b"0", b"-1", b"ten", b"true", b".nan", b""]


@pytest.mark.parametrize("bad", [b"__duration__: " + v for v in BAD_DURATIONS])
def test_a_bad_duration_is_refused(bad: bytes) -> None:
    checked = options.duration(bad, "labA/configs/c.yaml", 3600)
    assert checked.problem and "__duration__" in checked.problem and "positive" in checked.problem
