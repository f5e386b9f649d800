"""The SLURM launcher against the real single-node SLURM, the real LocalStack and Docker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from waiting import wait_until  # tests/ is on sys.path: pytest's rootdir conftest

from ncaas_dev.containers import Engine
from ncaas_dev.local.stack import PidFile, start_dispatcher
from ncaas_dev.pricing import runtime_seconds
from ncaas_dev.settings import Settings
from ncaas_dev.status import JobStatus, State

from ..jobs import ROOT, Lab, copy_blueprint, ncaas
from ..test_limits import analysis_containers, launches
from .conftest import MakeLab, jobs_of, scontrol, squeue, switch_dispatcher

pytestmark = pytest.mark.integration


def wait_for(what: str, check: Callable[[], object], timeout: float = 120) -> None:
    wait_until(check, timeout, what, interval=0.2)


def running_in_slurm(lab: Lab, job: str) -> str:
    """Wait until the job's one dataset runs its analysis under SLURM; its SLURM job id."""

    def analysis_started() -> bool:
        status = lab.client.status(lab.group, job)
        return any(e.message.split(": ")[-1].startswith("analysis started") for e in status.events)

    wait_for("running", analysis_started)
    ds = next(iter(lab.client.status(lab.group, job).datasets.values()))
    assert ds.state == State.RUNNING and (ds.runner or "").startswith("slurm:"), ds
    (ours,) = [j for j in jobs_of(lab.bucket) if j["state"] == "RUNNING"]
    return ours["id"]


def test_spike_detect_gives_the_same_results_as_docker(
    cli_env: dict[str, str], slurm_dispatcher: None, tmp_path: Path, settings: Settings
) -> None:
    folder = copy_blueprint(ROOT / "blueprints" / "spike-detect", tmp_path / "bp", "ncaas-slurm")
    data = tmp_path / "rec.bin"
    subprocess.run(
        [sys.executable, str(folder / "generate_data.py"), "--out", str(data)],
        check=True,
        capture_output=True,
    )
    runs: dict[str, dict[str, object]] = {}
    try:
        for launcher in ("docker", "slurm"):
            out = tmp_path / launcher
            args = ["run", str(folder), "--data", str(data), "--launcher", launcher]
            args += ["--config", str(folder / "params.yaml"), "--out", str(out), "--json"]
            done = ncaas(args, cli_env)
            assert done.returncode == 0, done.stderr[-2000:]
            runs[launcher] = json.loads(done.stdout)
    finally:  # `run` switched the dispatcher twice: back to the module's (and its settings)
        switch_dispatcher(settings, "slurm")
    assert runs["slurm"]["provenance"]["launcher"] == "slurm"  # type: ignore[index]
    assert str(runs["slurm"]["datasets"]["rec.bin"]["runner"]).startswith("slurm:")  # type: ignore[index]
    results = [Path(str(r["results_dir"])) / "process_results" / "rec.bin" for r in runs.values()]
    for name in ("spikes.csv", "summary.json"):
        assert (results[0] / name).read_bytes() == (results[1] / name).read_bytes(), name
    analysis = yaml.safe_load((folder / "blueprint.yaml").read_text())["analysis"]
    wait_for("completed in SLURM", lambda: _states(analysis) == ["COMPLETED"], 30)


def test_exit_3_fails_with_the_exit_code(slurm_lab: MakeLab) -> None:
    lab = slurm_lab()
    status = lab.run(dataname=lab.dataset(), configname=lab.config(exit=3))
    (ds,) = status.datasets.values()
    assert status.state == State.FAILED and ds.exit_code == 3, status
    assert "exited with code 3" in (ds.reason or "")
    assert (ds.runner or "").startswith("slurm:")  # the job SLURM ran it as
    wait_for("completed in SLURM", lambda: _states(lab.bucket) == ["COMPLETED"], 30)
    assert status.provenance["launcher"] == "slurm"
    # No instance runs a SLURM job: it is costed by the cores it asks for, not cloud.instance_type.
    assert status.provenance["instance_type"] is None, status.provenance
    assert status.provenance["slurm_cpus"] >= 1, status.provenance


def test_timeout_is_timed_out_with_partial_outputs(slurm_lab: MakeLab) -> None:
    # The runner's own timeout, so SLURM's warning must not come first. SLURM checks time
    # limits only every 30 s or so, and may signal that much ahead of the lead: with the
    # module's 1 min limit the warning can come at once. A 5 min limit (extra_args win) puts
    # it minutes after the runner's 3 s.
    lab = slurm_lab(run={"timeout": 3}, slurm={"extra_args": ["--time=5"]})
    status = lab.run(dataname=lab.dataset(), configname=lab.config(lines=1, sleep=60))
    (name, ds), = status.datasets.items()  # fmt: skip
    assert status.state == State.TIMED_OUT and "killed at the timeout" in (ds.reason or "")
    outputs = lab.storage.list_objects(lab.bucket, lab.paths(status.job).outputs(name))
    assert any(o.key.endswith("/facts.json") for o in outputs)  # written before the sleep
    assert not any(o.key.endswith("/done.txt") for o in outputs)


def test_slurm_time_limit_warning_records_timed_out_with_partial_outputs(
    slurm_lab: MakeLab,
) -> None:
    # --time: 110 s + the test's 10 s margin = 2 min; SIGUSR1 45 s before it (SLURM may send
    # it up to a check interval, ~30 s, earlier): 45-75 s into the job, when the runner is
    # surely up (a 1 min limit could signal a runner still starting), and long before the
    # runner's own 110 s timeout would stop the analysis.
    lab = slurm_lab(run={"timeout": 110})
    status = lab.run(dataname=lab.dataset(), configname=lab.config(lines=1, sleep=150), timeout=300)
    (name, ds), = status.datasets.items()  # fmt: skip
    assert status.state == State.TIMED_OUT, status
    assert "SLURM's time limit" in (ds.reason or ""), ds.reason
    outputs = lab.storage.list_objects(lab.bucket, lab.paths(status.job).outputs(name))
    assert any(o.key.endswith("/facts.json") for o in outputs)
    assert runtime_seconds(ds.started, ds.finished) < 110


def test_scancel_from_outside_is_cancelled(slurm_lab: MakeLab, engine: Engine) -> None:
    lab = slurm_lab()
    job = lab.wait_job(lab.submit(dataname=lab.dataset(), configname=lab.config(sleep=120)))
    slurm_id = running_in_slurm(lab, job)
    subprocess.run(["scancel", slurm_id], check=True)
    status = lab.wait_end(job, timeout=90)
    (ds,) = status.datasets.values()
    assert status.state == State.CANCELLED and "scancel" in (ds.reason or ""), status
    assert any("runner stopped by SIGTERM" in e.message for e in status.events)
    # The runner removed the analysis's container before SLURM's KillWait ran out.
    wait_for("no container left", lambda: not analysis_containers(engine, lab.bucket), 30)


def test_node_down_under_a_running_job_is_an_infrastructure_failure(
    slurm_lab: MakeLab, slurm_node: str
) -> None:
    lab = slurm_lab()
    job = lab.wait_job(lab.submit(dataname=lab.dataset(), configname=lab.config(sleep=120)))
    slurm_id = running_in_slurm(lab, job)
    try:
        scontrol("update", f"nodename={slurm_node}", "state=down", "reason=ncaas-test")
        wait_for("NODE_FAIL", lambda: squeue("-j", slurm_id)[0]["state"] == "NODE_FAIL", 60)
        seen = time.monotonic()
        status = lab.wait_end(job, timeout=30)
        # One pass: squeue every second (the test dispatcher's), plus a loaded machine's slack.
        assert time.monotonic() - seen < 10
    finally:  # back to idle (ReturnToService=2 may have done it already: resume is refused)
        if "idle" not in _node_state(slurm_node):
            subprocess.run(["scontrol", "update", f"nodename={slurm_node}", "state=resume"])
        wait_for("idle", lambda: "idle" in _node_state(slurm_node), 60)
    (ds,) = status.datasets.values()
    assert status.state == State.FAILED, status
    assert "infrastructure error" in (ds.reason or "") and "NODE_FAIL" in (ds.reason or "")


def _node_state(node: str) -> str:
    return subprocess.run(
        ["sinfo", "-h", "-n", node, "-o", "%T"], capture_output=True, text=True, check=False
    ).stdout


class RunningSampler:
    """Counts the analysis's RUNNING jobs in squeue every 0.2 s while a test runs."""

    def __init__(self, analysis: str) -> None:
        self.analysis, self.most = analysis, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            running = sum(1 for j in jobs_of(self.analysis) if j["state"] == "RUNNING")
            self.most = max(self.most, running)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.most


def test_cap_holds_in_slurm(slurm_lab: MakeLab) -> None:
    lab = slurm_lab(limits={"max_concurrent_jobs": 2})
    sampler = RunningSampler(lab.bucket)
    job = lab.submit_datasets(6, lines=1, sleep=4)
    status = lab.wait_end(job, timeout=240)
    most = sampler.stop()
    assert status.state == State.SUCCEEDED, status
    wait_for("all completed in SLURM", lambda: _states(lab.bucket) == ["COMPLETED"] * 6, 30)
    # The node could run all six at once (16 jobs may share a core): the cap held them to 2.
    assert most == 2, most
    assert _most_overlapping(lab.bucket) <= 2


def _states(analysis: str) -> list[str]:
    return [j["state"] for j in jobs_of(analysis)]


def _most_overlapping(analysis: str) -> int:
    """Most of the analysis's jobs running at once by SLURM's completion log (second stamps)."""
    conf = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True).stdout
    loc = next(line.split("=", 1)[1].strip() for line in conf.splitlines() if "JobCompLoc" in line)
    edges: list[tuple[str, int]] = []
    for line in Path(loc).read_text().splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if fields.get("Name", "").startswith(f"ncaas-{analysis}-"):
            edges += [(fields["StartTime"], 1), (fields["EndTime"], -1)]
    running = most = 0
    for _, step in sorted(edges):
        running += step
        most = max(most, running)
    return most


def test_dispatcher_sigkill_each_dataset_ends_once(slurm_lab: MakeLab, settings: Settings) -> None:
    lab = slurm_lab()
    job = lab.submit_datasets(3, lines=1, sleep=8)
    wait_for(
        "all running",
        lambda: sum(j["state"] == "RUNNING" for j in jobs_of(lab.bucket)) == 3,
    )
    pidfile = PidFile(settings.state_dir, "dispatcher")
    pid = pidfile.read().pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for("dead", lambda: not pidfile.read().running, 10)
    start_dispatcher(settings, "slurm")  # adopts the running SLURM jobs by name
    status: JobStatus = lab.wait_end(job, timeout=120)
    assert status.state == State.SUCCEEDED, status
    for name in status.datasets:
        assert launches(status, name) == 1, name
        ended = [e for e in status.events if e.message.startswith(f"{name}: succeeded")]
        assert len(ended) == 1, name
    assert len(jobs_of(lab.bucket)) == 3  # one SLURM job per dataset, none submitted twice


def test_bad_partition_is_refused_and_nothing_stays_queued(slurm_lab: MakeLab) -> None:
    lab = slurm_lab(slurm={"partition": "nosuchpart"})
    status = lab.run(dataname=lab.dataset(), timeout=60)
    (ds,) = status.datasets.values()
    assert status.state == State.FAILED
    assert "slurm.partition 'nosuchpart'" in (ds.reason or ""), ds.reason
    assert jobs_of(lab.bucket) == []  # nothing queued in SLURM


def test_run_with_a_bad_partition_is_a_usage_error(
    cli_env: dict[str, str], slurm_node: str, tmp_path: Path
) -> None:
    folder = copy_blueprint(
        ROOT / "tests" / "fixtures" / "probe", tmp_path / "bp", "ncaas-slurm",
        slurm={"partition": "nosuchpart"},
    )  # fmt: skip
    data = tmp_path / "rec.bin"
    data.write_bytes(b"x")
    done = ncaas(["run", str(folder), "--data", str(data), "--launcher", "slurm"], cli_env)
    assert done.returncode == 2, done.stderr
    assert "slurm.partition 'nosuchpart'" in done.stderr and "debug" in done.stderr


def test_doctor_checks_slurm(cli_env: dict[str, str], slurm_node: str) -> None:
    done = ncaas(["doctor", "--launcher", "slurm", "--json"], cli_env)
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    for name in ("slurm tools", "munge", "slurm nodes"):
        assert checks[name]["level"] == "ok", checks[name]
    assert "1 usable node" in checks["slurm nodes"]["detail"]
