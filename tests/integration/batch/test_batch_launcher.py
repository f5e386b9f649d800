"""The Batch launcher against moto's Batch server (real job containers), LocalStack, Docker."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from ncaas_dev.checks.batch import batch_checks
from ncaas_dev.checks.doctor import Level
from ncaas_dev.containers import Engine
from ncaas_dev.launchers import batchenv
from ncaas_dev.launchers.batch import BatchLauncher
from ncaas_dev.local.stack import PidFile, start_dispatcher
from ncaas_dev.settings import Settings
from ncaas_dev.status import JobStatus, State
from ncaas_dev.storage import Storage

from ..jobs import ROOT, Lab, copy_blueprint, ncaas
from ..test_cancel import cancel_one_by_alice
from ..test_limits import DockerSampler, analysis_containers, launches, max_overlap
from .conftest import MakeLab, jobs_of, switch_dispatcher

pytestmark = pytest.mark.integration


def wait_for(what: str, check: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"not {what} within {timeout} s")


def analysis_running(lab: Lab, job: str, attempt: int = 1) -> dict[str, Any]:
    """Wait until the job's one dataset runs its analysis on attempt ``attempt``; its Batch job."""

    def started() -> bool:
        status = lab.client.status(lab.group, job)
        ds = next(iter(status.datasets.values()))
        begun = [e for e in status.events if "analysis started" in e.message]
        return (ds.model_extra or {}).get("attempts") == attempt and len(begun) >= attempt

    wait_for(f"attempt {attempt} running", started)
    return job_container(lab, job)


def job_container(lab: Lab, job: str) -> dict[str, Any]:
    ds = next(iter(lab.client.status(lab.group, job).datasets.values()))
    job_id = (ds.model_extra or {})["batch_jobs"][-1]
    return {"id": job_id, "container": f"{job_id}"}


def kill_job_container(engine: Engine, job_id: str) -> None:
    """The host goes away under the job: its container is SIGKILLed from outside."""
    found = [c for c in engine.client.containers.list() if c.name.endswith(job_id)]
    assert len(found) == 1, [c.name for c in engine.client.containers.list()]
    found[0].kill()


def attempts(status: JobStatus) -> int:
    (ds,) = status.datasets.values()
    return int((ds.model_extra or {})["attempts"])


def run_on_docker_and_batch(
    folder: Path, data: Path, config: Path, cli_env: dict[str, str], settings: Settings
) -> dict[str, dict[str, Any]]:
    """`run --json` of the analysis in ``folder`` on ``data``, with each launcher."""
    runs: dict[str, dict[str, Any]] = {}
    try:
        for launcher in ("docker", "batch"):
            out = folder.parent / f"out-{launcher}"
            args = ["run", str(folder), "--data", str(data), "--launcher", launcher]
            args += ["--config", str(config), "--out", str(out), "--json"]
            done = ncaas(args, cli_env)
            assert done.returncode == 0, done.stderr[-2000:]
            runs[launcher] = json.loads(done.stdout)
    finally:  # `run` switched the dispatcher twice: back to the module's (and its settings)
        switch_dispatcher(settings, "batch")
    return runs


def assert_byte_identical(runs: dict[str, dict[str, Any]], dataset: str) -> None:
    assert runs["batch"]["provenance"]["launcher"] == "batch"
    assert runs["batch"]["provenance"]["batch"]["job_queue"].startswith("ncaas-")
    ds = runs["batch"]["datasets"][dataset]
    assert str(ds["runner"]).startswith("batch:") and ds["attempts"] == 1, ds
    results = [Path(str(r["results_dir"])) / "process_results" / dataset for r in runs.values()]
    names = sorted(p.name for p in results[0].iterdir())
    assert names and names == sorted(p.name for p in results[1].iterdir())
    for name in names:
        assert (results[0] / name).read_bytes() == (results[1] / name).read_bytes(), name


def test_spike_detect_gives_the_same_results_as_docker(
    cli_env: dict[str, str], batch_dispatcher: None, tmp_path: Path, settings: Settings
) -> None:
    folder = copy_blueprint(ROOT / "blueprints" / "spike-detect", tmp_path / "bp", "ncaas-batch")
    data = tmp_path / "rec.bin"
    subprocess.run(
        [sys.executable, str(folder / "generate_data.py"), "--out", str(data)],
        check=True,
        capture_output=True,
    )
    runs = run_on_docker_and_batch(folder, data, folder / "params.yaml", cli_env, settings)
    assert_byte_identical(runs, "rec.bin")
    status = ncaas(["status", "--json"], cli_env)
    assert json.loads(status.stdout)["batch"]["endpoint"].startswith("http://127.0.0.1:")
    assert yaml.safe_load((folder / "blueprint.yaml").read_text())["analysis"]


def test_a_foreign_shell_analysis_gives_the_same_results_as_docker(
    cli_env: dict[str, str], batch_dispatcher: None, tmp_path: Path, settings: Settings
) -> None:
    """An analysis not written for ncaas-dev: a shell script, no Python, no AWS library."""
    fixture = ROOT / "tests" / "fixtures" / "shell"
    folder = copy_blueprint(fixture, tmp_path / "bp", "ncaas-shell")
    data = tmp_path / "session.dat"
    data.write_bytes(bytes(range(256)) * 40)
    config = tmp_path / "params.txt"
    config.write_text("zeta=1\nalpha=2\n")
    runs = run_on_docker_and_batch(folder, data, config, cli_env, settings)
    assert_byte_identical(runs, "session.dat")
    out = Path(str(runs["batch"]["results_dir"])) / "process_results" / "session.dat"
    assert (out / "bytes.txt").read_text().strip() == "10240"
    assert (out / "config-sorted.txt").read_text() == "alpha=2\nzeta=1\n"


def test_exit_3_fails_with_the_exit_code(batch_lab: MakeLab, batch: Any) -> None:
    lab = batch_lab()
    status = lab.run(dataname=lab.dataset(), configname=lab.config(exit=3), timeout=180)
    (ds,) = status.datasets.values()
    assert status.state == State.FAILED and ds.exit_code == 3, status
    assert "exited with code 3" in (ds.reason or "")
    (job,) = jobs_of(batch, lab.bucket)
    assert ds.runner == f"batch:{job['jobId']}" and attempts(status) == 1
    assert status.provenance["launcher"] == "batch"
    assert status.provenance["batch"]["compute_environment"] == f"ncaas-{lab.bucket}"
    # The runner recorded the analysis's failure and exited 0: Batch says SUCCEEDED.
    wait_for("succeeded in Batch", lambda: jobs_of(batch, lab.bucket)[0]["status"] == "SUCCEEDED")


def test_timeout_is_timed_out_with_partial_outputs(batch_lab: MakeLab) -> None:
    lab = batch_lab(run={"timeout": 3})
    status = lab.run(dataname=lab.dataset(), configname=lab.config(lines=1, sleep=60), timeout=180)
    (name, ds), = status.datasets.items()  # fmt: skip
    assert status.state == State.TIMED_OUT and "killed at the timeout" in (ds.reason or "")
    outputs = lab.storage.list_objects(lab.bucket, lab.paths(status.job).outputs(name))
    assert any(o.key.endswith("/facts.json") for o in outputs)
    assert not any(o.key.endswith("/done.txt") for o in outputs)


def test_cap_holds_in_the_dispatcher(batch_lab: MakeLab, batch: Any, engine: Engine) -> None:
    # moto starts every job at once (no scheduling): only the dispatcher's cap holds them.
    lab = batch_lab(limits={"max_concurrent_jobs": 2})
    with DockerSampler(engine, lab.bucket) as sampler:
        job = lab.submit_datasets(6, lines=1, sleep=4)
        status = lab.wait_end(job, timeout=300)
    assert status.state == State.SUCCEEDED, status
    assert sampler.most == 2, sampler.most
    assert max_overlap([status]) == 2
    assert len(jobs_of(batch, lab.bucket)) == 6  # one Batch job per dataset, none twice


def test_interrupted_attempt_is_retried_and_succeeds(
    batch_lab: MakeLab, batch: Any, engine: Engine
) -> None:
    lab = batch_lab()
    job = lab.wait_job(lab.submit(dataname=lab.dataset(), configname=lab.config(sleep=6)))
    first = analysis_running(lab, job)
    kill_job_container(engine, first["id"])  # the host is lost under the job
    status = lab.wait_end(job, timeout=240)
    assert status.state == State.SUCCEEDED, status
    assert attempts(status) == 2
    (ds,) = status.datasets.values()
    assert ds.runner != f"batch:{first['id']}" and len(jobs_of(batch, lab.bucket)) == 2
    assert "interrupted" in " ".join(e.message for e in status.events)
    certificate = lab.text(lab.paths(job).certificate)
    assert "attempt 2 of 3" in certificate


def test_interruptions_past_the_retries_fail_naming_them(
    batch_lab: MakeLab, batch: Any, engine: Engine
) -> None:
    lab = batch_lab(batch={"retries": 1})
    job = lab.wait_job(lab.submit(dataname=lab.dataset(), configname=lab.config(sleep=60)))
    first = analysis_running(lab, job)
    kill_job_container(engine, first["id"])
    second = analysis_running(lab, job, attempt=2)
    # A spot reclaim, as AWS Batch reports it on the attempt.
    reclaim = "Host EC2 (instance i-0123456789abcdef0) terminated."
    batch.terminate_job(jobId=second["id"], reason=reclaim)
    status = lab.wait_end(job, timeout=240)
    (ds,) = status.datasets.values()
    assert status.state == State.FAILED and attempts(status) == 2, status
    assert "interrupted 2 times" in (ds.reason or "") and reclaim in (ds.reason or ""), ds.reason
    assert first["id"] in (ds.reason or "")
    assert len(jobs_of(batch, lab.bucket)) == 2
    wait_for("no analysis left", lambda: analysis_containers(engine, lab.bucket) == [], 30)


def test_cancel_terminates_the_job(
    batch_lab: MakeLab, batch: Any, engine: Engine, settings: Settings, storage: Storage
) -> None:
    lab = batch_lab()
    job = lab.wait_job(lab.submit(dataname=lab.dataset(), configname=lab.config(sleep=60)))
    running = analysis_running(lab, job)
    launcher = BatchLauncher(settings, storage)
    assert launcher.terminate(lab.bucket, lab.group, job) == [running["id"]]
    status = lab.wait_end(job, timeout=120)
    (ds,) = status.datasets.values()
    assert status.state == State.CANCELLED and "cancel" in (ds.reason or ""), ds
    assert attempts(status) == 1  # a cancel is no interruption: never retried
    wait_for("failed in Batch", lambda: jobs_of(batch, lab.bucket)[0]["status"] == "FAILED")
    wait_for("no analysis left", lambda: analysis_containers(engine, lab.bucket) == [], 30)


def test_a_cancel_file_terminates_the_batch_job(
    batch_lab: MakeLab, batch: Any, engine: Engine
) -> None:
    """The user's way: a cancel file, which the dispatcher turns into TerminateJob."""
    lab = batch_lab()
    job = lab.wait_job(lab.submit(dataname=lab.dataset(), configname=lab.config(sleep=60)))
    running = analysis_running(lab, job)
    final, _ = cancel_one_by_alice(lab, engine, job)
    assert attempts(final) == 1  # a cancel is no interruption: never retried
    wait_for("failed in Batch", lambda: jobs_of(batch, lab.bucket)[0]["status"] == "FAILED")
    assert [j["jobId"] for j in jobs_of(batch, lab.bucket)] == [running["id"]]


def test_dispatcher_sigkill_each_dataset_ends_once(
    batch_lab: MakeLab, batch: Any, settings: Settings
) -> None:
    lab = batch_lab()
    job = lab.submit_datasets(3, lines=1, sleep=15)

    def mid_job() -> bool:  # all three submitted, one running at least, none ended yet
        states = [j["status"] for j in jobs_of(batch, lab.bucket)]
        ended = {"SUCCEEDED", "FAILED"} & set(states)
        return len(states) == 3 and "RUNNING" in states and not ended

    wait_for("all submitted, none ended", mid_job)
    pidfile = PidFile(settings.state_dir, "dispatcher")
    pid = pidfile.read().pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for("dead", lambda: not pidfile.read().running, 10)
    start_dispatcher(settings, "batch")  # adopts the running Batch jobs of its queues
    status: JobStatus = lab.wait_end(job, timeout=180)
    assert status.state == State.SUCCEEDED, status
    for name in status.datasets:
        assert launches(status, name) == 1, name
        ended = [e for e in status.events if e.message.startswith(f"{name}: succeeded")]
        assert len(ended) == 1, name
    assert len(jobs_of(batch, lab.bucket)) == 3  # none submitted twice


def test_down_removes_the_job_containers_of_its_own_stack_only(
    engine: Engine, tmp_path: Path
) -> None:
    from ncaas_dev.local.batchserver import stop_batch_containers

    def job_container(state: Path) -> Any:
        return engine.client.containers.run(
            "ncaas/base:bookworm",
            ["sleep", "60"],
            name=f"ncaas-downtest-{os.getpid()}-{state.name}",
            environment={"NCAAS_STATE_DIR": str(state)},
            detach=True,
        )

    ours, theirs = job_container(tmp_path / "ours"), job_container(tmp_path / "theirs")
    try:
        assert stop_batch_containers(tmp_path / "ours") == 1
        names = {c.name for c in engine.client.containers.list(all=True)}
        assert ours.name not in names and theirs.name in names
    finally:
        for container in (ours, theirs):
            with contextlib.suppress(Exception):
                container.remove(force=True)


def test_doctor_checks_the_batch_server_and_its_runner_image(
    cli_env: dict[str, str],
    batch_server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    done = ncaas(["doctor", "--launcher", "batch", "--json"], cli_env)
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    assert checks["batch server"]["level"] == "ok", checks["batch server"]
    assert batch_server in checks["batch server"]["detail"]
    assert checks["batch runner image"]["level"] == "ok", checks["batch runner image"]

    monkeypatch.delenv("NCAAS_BATCH_ENDPOINT", raising=False)
    monkeypatch.setattr(batchenv, "RUNNER_IMAGE", "ncaas/no-such-runner:image")
    missing = {c.name: c for c in batch_checks(tmp_path)}  # a state folder with no stack
    assert missing["batch server"].level == Level.FAIL
    assert "up --launcher batch" in (missing["batch server"].fix or "")
    assert missing["batch runner image"].level == Level.FAIL
    assert "ncaas/no-such-runner:image" in missing["batch runner image"].detail
