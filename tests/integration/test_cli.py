"""The commands a developer types, run as subprocesses against the session's stack."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from isolation import closed_endpoint

from ncaas_dev.blueprint import LoadedBlueprint
from ncaas_dev.storage import Storage

from .jobs import Lab, ncaas, new_analysis

pytestmark = pytest.mark.integration


def test_run_end_to_end(probe: LoadedBlueprint, cli_env: dict[str, str], tmp_path: Path) -> None:
    data = tmp_path / "rec one.bin"  # a space: keys in S3 events arrive URL-encoded
    data.write_bytes(b"\x01" * 2048)
    config = tmp_path / "params.json"
    config.write_text(json.dumps({"lines": 3}))
    out = tmp_path / "results"
    result = ncaas(
        ["run", str(probe.folder), "--data", str(data), "--config", str(config), "--out", str(out)],
        cli_env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "line 2" in result.stdout and "succeeded" in result.stdout
    assert "starting LocalStack" not in result.stderr  # the session's stack is up: just used
    assert "submitted s3://" in result.stderr
    (job_dir,) = out.iterdir()
    assert json.loads((job_dir / "logs/status.json").read_text())["state"] == "succeeded"
    assert (
        "DATANAME: rec one.bin | STATUS: succeeded"
        in (job_dir / "logs/certificate.txt").read_text()
    )
    assert "line 0" in (job_dir / "logs/rec one.bin.log").read_text()
    assert (job_dir / "process_results/rec one.bin/done.txt").read_text() == "done\n"
    assert (job_dir / "process_results/end.txt").exists()


def test_run_json_and_failure_exit_code(
    probe: LoadedBlueprint, cli_env: dict[str, str], tmp_path: Path
) -> None:
    data = tmp_path / "rec.bin"
    data.write_bytes(b"x")
    config = tmp_path / "fail.json"
    config.write_text(json.dumps({"exit": 5}))
    result = ncaas(
        [
            "run",
            str(probe.folder),
            "--data",
            str(data),
            "--config",
            str(config),
            "--out",
            str(tmp_path / "r"),
            "--json",
        ],
        cli_env,
    )
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    assert doc["state"] == "failed" and doc["datasets"]["rec.bin"]["exit_code"] == 5
    assert "exited with code 5" in result.stderr


def test_submit_wait_reports_rejection_with_exit_1(
    probe: LoadedBlueprint, cli_env: dict[str, str], storage: Storage
) -> None:
    theirs = Lab(storage, probe.blueprint.analysis, group="labB").dataset()
    result = ncaas(["submit", str(probe.folder), "--data", theirs, "--wait"], cli_env)
    assert result.returncode == 1
    assert "rejected" in result.stderr and "outside your group's prefix" in result.stderr


def test_status_jobs_logs_results(
    probe: LoadedBlueprint,
    cli_env: dict[str, str],
    storage: Storage,
    dispatcher: int,
    tmp_path: Path,
) -> None:
    lab = Lab(storage, probe.blueprint.analysis)
    finished = lab.run(dataname=lab.dataset())
    status = json.loads(ncaas(["status", "--json"], cli_env).stdout)
    assert status["localstack"]["running"] is True
    assert status["dispatcher"]["running"] is True
    assert status["dispatcher"]["launcher"] == "docker" and status["dispatcher"]["pid"]
    assert probe.blueprint.analysis in status["analyses"]
    jobs = json.loads(ncaas(["jobs", probe.blueprint.analysis, "--json"], cli_env).stdout)
    assert finished.job in [j["job"] for j in jobs]
    logs = ncaas(["logs", probe.blueprint.analysis, finished.job], cli_env)
    assert logs.returncode == 0 and "line 0" in logs.stdout
    got = ncaas(
        ["results", probe.blueprint.analysis, finished.job, "--out", str(tmp_path), "--json"],
        cli_env,
    )
    assert got.returncode == 0, got.stderr
    assert (Path(json.loads(got.stdout)["results_dir"]) / "process_results/end.txt").exists()


def test_localstack_down_is_one_line_and_exit_1(cli_env: dict[str, str]) -> None:
    env = {**cli_env, "AWS_ENDPOINT_URL": closed_endpoint()}
    result = ncaas(["jobs", "some-analysis"], env)
    assert result.returncode == 1
    assert f"LocalStack does not answer at {closed_endpoint()}" in result.stderr
    assert "ncaas-dev up" in result.stderr and "Traceback" not in result.stderr


def test_docker_down_is_one_line_and_exit_1(
    probe: LoadedBlueprint, cli_env: dict[str, str]
) -> None:
    env = {**cli_env, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    result = ncaas(["build", str(probe.folder)], env)
    assert result.returncode == 1
    assert "Docker does not answer" in result.stderr and "Traceback" not in result.stderr


def test_init_scaffold_runs_as_it_is(cli_env: dict[str, str], tmp_path: Path) -> None:

    name = new_analysis("scaffold")
    assert ncaas(["init", name], cli_env, cwd=tmp_path).returncode == 0
    sample = tmp_path / "sample.txt"
    sample.write_text("hello\n")
    result = ncaas(["run", name, "--data", "sample.txt"], cli_env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    (job_dir,) = (tmp_path / "ncaas-results").iterdir()
    summary = json.loads((job_dir / "process_results/sample.txt/summary.json").read_text())
    assert summary["bytes"] == 6
