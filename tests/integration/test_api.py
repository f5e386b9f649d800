"""The Python API end to end against the session's real stack: run, submit + wait, logs,
download, and each error a caller can meet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from isolation import closed_endpoint

import ncaas_dev
from ncaas_dev.blueprint import LoadedBlueprint
from ncaas_dev.settings import Settings
from ncaas_dev.storage import Storage

from .api_env import point_at
from .jobs import Lab, copy_blueprint

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    point_at(monkeypatch, settings)


def _files(tmp_path: Path, **cfg: object) -> tuple[Path, Path]:
    data = tmp_path / "rec.bin"
    data.write_bytes(b"\x01" * 1000)
    config = tmp_path / "params.json"
    config.write_text(json.dumps(cfg))
    return data, config


def test_run_logs_download(probe: LoadedBlueprint, api: None, tmp_path: Path) -> None:
    data, config = _files(tmp_path, lines=3)
    events: list[ncaas_dev.Progress] = []
    job = ncaas_dev.run(probe, data=[data], config=config, on_progress=events.append)
    assert isinstance(job, ncaas_dev.Job)
    assert job.state == ncaas_dev.State.SUCCEEDED == "succeeded" and job.reason is None
    assert job.finished and job.succeeded and job.check() is job
    assert job.datasets["rec.bin"].exit_code == 0
    assert job.cost_usd is not None and job.cost_usd >= 0
    # stdout and stderr ("finished") are two streams: their relative order is not kept
    assert {"line 0", "line 1", "line 2", "finished"} <= set(job.logs("rec.bin"))
    assert {"step", "event", "log"} <= {e.kind for e in events}
    assert any(e.kind == "log" and e.dataset == "rec.bin" for e in events)
    folder = job.download(tmp_path / "results")
    assert folder == tmp_path / "results" / job.name
    assert (folder / "process_results/rec.bin/done.txt").read_text() == "done\n"
    assert json.loads((folder / "logs/status.json").read_text())["state"] == "succeeded"
    with pytest.raises(ncaas_dev.UsageError, match=r"no dataset 'other\.bin'"):
        list(job.logs("other.bin"))


def test_run_with_out_downloads_and_a_failure_is_a_job_not_an_exception(
    probe: LoadedBlueprint, api: None, tmp_path: Path
) -> None:
    data, config = _files(tmp_path, exit=5)
    job = ncaas_dev.run(str(probe.folder), data=[str(data)], config=config, out=tmp_path / "o")
    assert job.state == "failed" and "exited with code 5" in (job.reason or "")
    assert job.results_dir == tmp_path / "o" / job.name and job.results_dir.is_dir()
    with pytest.raises(ncaas_dev.JobFailed, match="exited with code 5") as caught:
        job.check()
    assert caught.value.exit_code == 1


def test_submit_returns_at_once_then_wait(
    probe: LoadedBlueprint, api: None, dispatcher: int, storage: Storage, tmp_path: Path
) -> None:
    lab = Lab(storage, probe.blueprint.analysis)
    key = lab.dataset()  # already in S3: submitted by key
    _, config = _files(tmp_path, sleep=2)
    job = ncaas_dev.submit(probe.blueprint.analysis, data=[key], config=config, group="labA")
    assert not job.finished and job.state in ("queued", "running")
    with pytest.raises(ncaas_dev.JobTimeout, match="still") as caught:
        job.wait(timeout=0.3)
    assert isinstance(caught.value, ncaas_dev.NcaasError) and caught.value.hint
    assert job.wait(timeout=120) == "succeeded"
    listed = ncaas_dev.jobs(probe.blueprint.analysis, group="labA")
    assert listed[0].name == job.name  # newest first
    created = [j.status.created for j in listed]
    assert created == sorted(created, reverse=True)
    again = ncaas_dev.job(probe.blueprint.analysis, job.name)
    assert again.state == "succeeded" and again.datasets.keys() == job.datasets.keys()


def test_submit_outside_the_group_is_rejected(
    probe: LoadedBlueprint, api: None, dispatcher: int, storage: Storage
) -> None:
    theirs = Lab(storage, probe.blueprint.analysis, group="labB").dataset()
    job = ncaas_dev.submit(probe, data=[theirs])
    assert job.wait(timeout=60) == "rejected"
    assert "outside your group's prefix" in (job.reason or "")


def test_errors_carry_message_hint_and_exit_code(
    probe: LoadedBlueprint, api: None, tmp_path: Path
) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "blueprint.yaml").write_text("analysis: Bad_Name\ngroups: [{name: a}]\n")
    with pytest.raises(ncaas_dev.BlueprintError, match="field 'analysis'") as bad:
        ncaas_dev.load_blueprint(tmp_path / "bad")
    assert bad.value.exit_code == 2 and "blueprint.yaml" in bad.value.message
    with pytest.raises(ncaas_dev.BlueprintError) as missing:
        ncaas_dev.load_blueprint(tmp_path / "nowhere")
    assert missing.value.hint == "give a folder holding blueprint.yaml"

    with pytest.raises(ncaas_dev.UsageError, match="no such file") as usage:
        ncaas_dev.run(probe, data=[tmp_path / "missing.bin"])
    assert usage.value.exit_code == 2 and usage.value.hint
    with pytest.raises(ncaas_dev.UsageError, match="group 'labZ'"):
        ncaas_dev.run(probe, data=[tmp_path / "missing.bin"], group="labZ")
    with pytest.raises(ncaas_dev.UsageError, match="unknown launcher"):
        ncaas_dev.up(launcher="nope")
    with pytest.raises(ncaas_dev.UsageError, match="neither a blueprint folder"):
        ncaas_dev.submit("no-such-analysis", data=["labA/inputs/x"])

    with pytest.raises(ncaas_dev.ServiceUnavailable, match="LocalStack does not answer") as down:
        ncaas_dev.jobs("anything", endpoint_url=closed_endpoint())
    assert down.value.exit_code == 1 and "ncaas-dev up" in (down.value.hint or "")

    broken = copy_blueprint(FIXTURES / "probe", tmp_path / "broken", "ncaas-api-broken")
    (broken / "Dockerfile").write_text("FROM ncaas/base:bookworm\nRUN exit 7\n")
    with pytest.raises(ncaas_dev.BuildFailed, match=r"docker build of .* failed"):
        ncaas_dev.build(broken)
    for error in (ncaas_dev.UsageError, ncaas_dev.BuildFailed, ncaas_dev.JobTimeout):
        assert issubclass(error, ncaas_dev.NcaasError)


def test_status_and_up_shapes(probe: LoadedBlueprint, api: None, dispatcher: int) -> None:
    doc = ncaas_dev.status()
    assert doc["localstack"]["running"] is True
    assert doc["dispatcher"]["running"] is True and doc["dispatcher"]["launcher"] == "docker"
    assert probe.blueprint.analysis in doc["analyses"]
    assert ncaas_dev.up()["endpoint"] == doc["endpoint"]  # already up: nothing restarted
    assert ncaas_dev.status()["dispatcher"]["pid"] == doc["dispatcher"]["pid"]
