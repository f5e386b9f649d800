"""The SLURM launcher's pure parts (what it submits, how it reads SLURM) and its bookkeeping
against a scripted squeue/sbatch. The real daemons: tests/integration/slurm/."""

from __future__ import annotations

import contextlib
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import MakeTask, WriteBlueprint

from ncaas_dev.blueprint import BlueprintError, SlurmSpec, load_blueprint
from ncaas_dev.errors import NcaasError
from ncaas_dev.launchers.base import DatasetTask, RetryableLaunchError
from ncaas_dev.launchers.slurm import SlurmLauncher
from ncaas_dev.launchers.slurmjob import (
    SIGNAL_LEAD_S,
    STAGING_MARGIN_S,
    SlurmJob,
    apptainer_command,
    batch_script,
    ended_as,
    job_comment,
    job_name,
    parse_squeue,
    sbatch_args,
)
from ncaas_dev.pricing import launcher_price
from ncaas_dev.settings import Settings
from ncaas_dev.status import State


def slurm_task(make_task: MakeTask, slurm: dict[str, Any] | None = None, **kw: Any) -> DatasetTask:
    task = make_task(**kw)
    bp = task.record.blueprint.model_copy(update={"slurm": SlurmSpec(**(slurm or {}))})
    return task.model_copy(update={"record": task.record.model_copy(update={"blueprint": bp})})


def test_blueprint_slurm_section_defaults_and_validation(write_blueprint: WriteBlueprint) -> None:
    bp = load_blueprint(write_blueprint()).blueprint
    assert bp.slurm == SlurmSpec()
    assert (bp.slurm.partition, bp.slurm.container, bp.slurm.price_per_cpu_hour) == (
        None,
        "docker",
        0,
    )
    bad = "analysis: my-analysis\nslurm:\n  container: podman\ngroups:\n  - name: labA\n"
    with pytest.raises(BlueprintError, match=r"slurm\.container"):
        load_blueprint(write_blueprint(bad))


def test_sbatch_args_follow_the_blueprint(make_task: MakeTask) -> None:
    task = slurm_task(
        make_task,
        slurm={"partition": "gpu", "account": "lab", "qos": "short", "extra_args": ["-C", "x"]},
        run={"timeout": 3600},
        resources={"cpus": 1.5, "memory": "3g", "gpu": True},
    )
    args = sbatch_args(task, "/logs/%j.out")
    assert args[0] == "--parsable"
    assert f"--job-name={job_name(task)}" in args and "--no-requeue" in args
    assert f"--time={(3600 + STAGING_MARGIN_S + 59) // 60}" in args
    assert "--cpus-per-task=2" in args and "--mem=3072M" in args and "--gres=gpu:1" in args
    assert f"--signal=B:USR1@{SIGNAL_LEAD_S}" in args
    assert {"--partition=gpu", "--account=lab", "--qos=short"} <= set(args)
    assert args[-2:] == ["-C", "x"]  # the site's own options come last, so they win
    assert json.loads(args[2].removeprefix("--comment=")) == {
        "bucket": "spike-detect",
        "group": "labA",
        "job": "job_20261124T203000Z",
        "dataset": "rec1.bin",
    }


def test_no_partition_means_the_default_one_and_no_gpu(make_task: MakeTask) -> None:
    args = sbatch_args(slurm_task(make_task), "/x")
    assert not any(a.startswith(("--partition", "--account", "--qos", "--gres")) for a in args)


def test_job_name_is_safe_for_slurm(make_task: MakeTask) -> None:
    task = slurm_task(make_task, dataset="my rec;$(rm -rf).bin")
    name = job_name(task)
    assert name.startswith("ncaas-spike-detect-job_20261124T203000Z-")
    assert all(c.isalnum() or c in "._-" for c in name)


def test_batch_script_runs_the_runner_with_the_embedded_task(make_task: MakeTask) -> None:
    task = slurm_task(make_task)
    script = batch_script(task, "/opt/ncaas/bin/python")
    assert script.startswith("#!/bin/bash\n")
    assert task.model_dump_json() in script
    last = script.strip().splitlines()[-1]
    assert last == 'exec /opt/ncaas/bin/python -m ncaas_dev.runner /dev/fd/3 "slurm:$SLURM_JOB_ID"'


def test_batch_script_really_runs(make_task: MakeTask, tmp_path: Path) -> None:
    """The script under bash, with a stand-in Python that prints the task it was given."""
    fake = tmp_path / "python"
    fake.write_text('#!/bin/bash\necho "args: $*"; cat "$3"\n')
    fake.chmod(0o755)
    task = slurm_task(make_task)
    done = subprocess.run(
        ["bash", "-c", batch_script(task, str(fake))],
        env={"SLURM_JOB_ID": "42", "PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "args: -m ncaas_dev.runner /dev/fd/3 slurm:42" in done.stdout
    assert DatasetTask.model_validate_json(done.stdout.splitlines()[-1]) == task
    assert not list(tmp_path.glob("ncaas-task.*"))  # the task file is gone from disk


def test_apptainer_rendering_keeps_the_container_contract(make_task: MakeTask) -> None:
    task = slurm_task(make_task, config_key="labA/configs/p.yaml")
    command = apptainer_command(task, "/images/spike-detect.tar", "/scratch/w")
    text = " ".join(command)
    assert command[:2] == ["apptainer", "run"]  # no run.command: the image's entrypoint
    assert "--containall" in command and "--no-home" in command
    assert "--net --network none" in text  # no network unless run.network
    assert "--bind /scratch/w/input:/ncaas/input:ro" in text
    assert "--bind /scratch/w/config:/ncaas/config:ro" in text
    assert "--bind /scratch/w/output:/ncaas/output:rw" in text
    assert "--env NCAAS_DATASET=rec1.bin" in text
    assert command[-1] == "docker-archive:///images/spike-detect.tar"
    given = slurm_task(make_task, run={"command": ["python3", "/app/main.py"]})
    exec_form = apptainer_command(given, "/i.tar", "/w")
    assert exec_form[1] == "exec" and exec_form[-3:] == [
        "docker-archive:///i.tar",
        "python3",
        "/app/main.py",
    ]


@pytest.mark.parametrize(
    ("slurm_state", "state", "words"),
    [
        ("COMPLETED", None, "completed"),
        ("FAILED", None, "ended FAILED"),
        ("TIMEOUT", State.TIMED_OUT, "time limit"),
        ("DEADLINE", State.TIMED_OUT, "time limit"),
        ("OUT_OF_MEMORY", State.FAILED, "out of memory: SLURM job 7 used more than its 0.25 GiB"),
        ("CANCELLED", State.CANCELLED, "scancel"),
        ("NODE_FAIL", State.FAILED, "infrastructure error"),
        ("PREEMPTED", State.FAILED, "submit the dataset again"),
        ("BOOT_FAIL", State.FAILED, "infrastructure error"),
    ],
)
def test_end_states_map_as_the_table_says(
    make_task: MakeTask, slurm_state: str, state: State | None, words: str
) -> None:
    task = slurm_task(make_task, resources={"memory": "256m"})
    job = SlurmJob("7", "n", slurm_state, "None", "0:0", "")
    got_state, reason = ended_as(job, task)
    assert got_state == state and words in reason


@pytest.mark.parametrize(
    "slurm_state", ["PENDING", "CONFIGURING", "REQUEUED", "RUNNING", "COMPLETING", "SUSPENDED"]
)
def test_queued_and_running_states_are_live(slurm_state: str) -> None:
    assert SlurmJob("1", "n", slurm_state, "", "", "").live


def test_parse_squeue_keeps_comments_whole() -> None:
    comment = '{"bucket":"a","group":"g","job":"j","dataset":"x|y"}'
    jobs = parse_squeue(f"12|ncaas-a-j-x_y|RUNNING|None|0:0|{comment}\n13|other|PENDING|P|0:0|\n")
    assert jobs["12"].identity() == ("a", "g", "j", "x|y")
    assert jobs["13"].identity() is None  # not ours


def test_price_is_per_core_hour_on_slurm(make_task: MakeTask) -> None:
    task = slurm_task(make_task, slurm={"price_per_cpu_hour": 0.05}, resources={"cpus": 3})
    label, price = launcher_price(task.record.blueprint, "slurm")
    assert label == "slurm (3 core(s))" and price == pytest.approx(0.15)
    assert launcher_price(task.record.blueprint, "docker")[0] == "m5.xlarge"


class FakeSlurm:
    """squeue, sbatch and scancel as scripted answers; counts each command."""

    def __init__(self) -> None:
        self.jobs: dict[str, tuple[str, str, str]] = {}  # id -> name, state, comment
        self.calls: list[str] = []
        self.sbatch_error: str | None = None

    def __call__(self, args: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(args[0])
        if args[0] == "squeue":
            out = "".join(
                f"{i}|{name}|{state}|None|0:0|{comment}\n"
                for i, (name, state, comment) in self.jobs.items()
            )
            return subprocess.CompletedProcess(args, 0, out, "")
        if args[0] == "sbatch":
            if self.sbatch_error:
                return subprocess.CompletedProcess(args, 1, "", self.sbatch_error)
            job_id = str(100 + len(self.jobs))
            opts = dict(a.removeprefix("--").split("=", 1) for a in args if "=" in a)
            self.jobs[job_id] = (opts["job-name"], "PENDING", opts["comment"])
            return subprocess.CompletedProcess(args, 0, f"{job_id}\n", "")
        if args[0] == "scancel":
            for job_id in args[1:]:
                name, _, comment = self.jobs[job_id]
                self.jobs[job_id] = (name, "CANCELLED", comment)
            return subprocess.CompletedProcess(args, 0, "", "")
        raise AssertionError(args)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def launcher(tmp_path: Path, fake: FakeSlurm, clock: Clock | None = None) -> SlurmLauncher:
    settings = Settings(endpoint_url="http://127.0.0.1:1", state_dir=tmp_path)
    made = SlurmLauncher(settings, storage=None, python="/py", run=fake, clock=clock or Clock())  # type: ignore[arg-type]
    made._adopted = True  # nothing to adopt: no storage here
    return made


def test_one_squeue_per_pass_for_all_jobs(
    make_task: MakeTask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ncaas_dev.launchers.slurm.POLL_SECONDS", 1e9)
    fake = FakeSlurm()
    slurm = launcher(tmp_path, fake)
    for n in range(5):
        slurm.launch(slurm_task(make_task, dataset=f"rec{n}.bin"))
    assert slurm.active("spike-detect") == 5 and slurm.active("other") == 0
    slurm.reap()
    assert fake.calls.count("squeue") == 1 and fake.calls.count("sbatch") == 5


def test_cap_counts_jobs_another_dispatcher_submitted(make_task: MakeTask, tmp_path: Path) -> None:
    fake = FakeSlurm()
    task = slurm_task(make_task)
    fake.jobs["7"] = (job_name(task), "RUNNING", job_comment(task))
    fake.jobs["8"] = (job_name(task), "COMPLETED", job_comment(task))
    assert launcher(tmp_path, fake).active("spike-detect") == 1


def test_launch_of_a_dataset_slurm_already_runs_submits_nothing(
    make_task: MakeTask, tmp_path: Path
) -> None:
    fake = FakeSlurm()
    task = slurm_task(make_task)
    fake.jobs["7"] = (job_name(task), "PENDING", job_comment(task))
    assert launcher(tmp_path, fake).launch(task) == "slurm:7"
    assert "sbatch" not in fake.calls


def test_end_states_come_back_from_reap(make_task: MakeTask, tmp_path: Path) -> None:
    fake = FakeSlurm()
    slurm = launcher(tmp_path, fake)
    runner = slurm.launch(slurm_task(make_task))
    assert slurm.reap() == []
    slurm._polled = -1e9
    job_id = runner.removeprefix("slurm:")
    name, _, comment = fake.jobs[job_id]
    fake.jobs[job_id] = (name, "NODE_FAIL", comment)
    (finished,) = slurm.reap()
    assert finished.state == State.FAILED and "infrastructure error" in finished.detail


def test_a_killed_jobs_analysis_container_is_removed(make_task: MakeTask, tmp_path: Path) -> None:
    """SLURM SIGKILLs a runner that outlives SIGTERM; its container must not run on."""
    from ncaas_dev.containers import connect

    client = connect()
    fake = FakeSlurm()
    slurm = launcher(tmp_path, fake)
    unique = f"rec-{uuid.uuid4().hex[:8]}"
    task, other = (slurm_task(make_task, dataset=f"{unique}-{n}.bin") for n in range(2))
    left = [
        client.containers.run(
            "ncaas/base:bookworm",
            ["sleep", "120"],
            detach=True,
            labels={
                "ncaas": "run",
                "ncaas.analysis": t.record.blueprint.analysis,
                "ncaas.group": t.group,
                "ncaas.job": t.job,
                "ncaas.dataset": t.dataset,
            },
        )
        for t in (task, other)
    ]
    try:
        job_id = slurm.launch(task).removeprefix("slurm:")
        name, _, comment = fake.jobs[job_id]
        fake.jobs[job_id] = (name, "CANCELLED", comment)
        slurm._polled = -1e9
        (finished,) = slurm.reap()
        assert finished.state == State.CANCELLED
        found = client.containers.list(all=True, filters={"label": f"ncaas.dataset={task.dataset}"})
        assert found == [], "the cancelled dataset's container was left behind"
        left[1].reload()  # another dataset's container is untouched
        assert left[1].status == "running"
    finally:
        for container in left:
            with contextlib.suppress(Exception):
                container.remove(force=True)


def test_a_job_slurm_forgot_is_lost_only_after_the_grace(
    make_task: MakeTask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ncaas_dev.launchers.slurm.POLL_SECONDS", 0)
    fake, clock = FakeSlurm(), Clock()
    slurm = launcher(tmp_path, fake, clock)
    runner = slurm.launch(slurm_task(make_task))
    del fake.jobs[runner.removeprefix("slurm:")]
    clock.now += 60
    assert slurm.reap() == []
    clock.now += 119
    assert slurm.reap() == []
    clock.now += 2
    (finished,) = slurm.reap()
    assert finished.state is None and "no longer known to SLURM" in finished.detail


def test_cancel_scancels_the_jobs_of_a_job(make_task: MakeTask, tmp_path: Path) -> None:
    fake = FakeSlurm()
    slurm = launcher(tmp_path, fake)
    for n in range(2):
        slurm.launch(slurm_task(make_task, dataset=f"rec{n}.bin"))
    assert slurm.scancel("spike-detect", "labA", "job_20261124T203000Z") == ["100", "101"]
    assert {state for _, state, _ in fake.jobs.values()} == {"CANCELLED"}


def test_sbatch_refusals(make_task: MakeTask, tmp_path: Path) -> None:
    fake = FakeSlurm()
    slurm = launcher(tmp_path, fake)
    fake.sbatch_error = "sbatch: error: invalid partition specified: nope"
    task = slurm_task(make_task, slurm={"partition": "nope"})
    with pytest.raises(NcaasError, match=r"refused slurm\.partition 'nope'"):
        slurm.launch(task)
    fake.sbatch_error = "sbatch: error: Batch job submission failed: Socket timed out on send/recv"
    with pytest.raises(RetryableLaunchError):
        slurm.launch(task)
    oci = slurm_task(make_task, slurm={"container": "oci"})
    with pytest.raises(NcaasError, match=r"slurm\.container: oci"):
        slurm.launch(oci)


def test_reap_reads_the_squeue_active_took(
    make_task: MakeTask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pass's squeue may come from active() (the cap); reap must not skip it."""
    monkeypatch.setattr("ncaas_dev.launchers.slurm.POLL_SECONDS", 1e9)
    fake = FakeSlurm()
    slurm = launcher(tmp_path, fake)
    job_id = slurm.launch(slurm_task(make_task)).removeprefix("slurm:")
    assert slurm.reap() == []
    name, _, comment = fake.jobs[job_id]
    fake.jobs[job_id] = (name, "CANCELLED", comment)
    slurm._polled = -1e9  # the next squeue is due, and active() takes it
    assert slurm.active("spike-detect") == 0
    (finished,) = slurm.reap()
    assert finished.state == State.CANCELLED and fake.calls.count("squeue") == 2


def test_slurm_not_answering_launches_nothing_and_fails_nothing(
    make_task: MakeTask, tmp_path: Path
) -> None:
    def down(args: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        error = "slurm_load_jobs error: Unable to contact slurm controller (connect failure)"
        return subprocess.CompletedProcess(args, 1, "", error)

    slurm = launcher(tmp_path, down)  # type: ignore[arg-type]
    assert slurm.active("spike-detect") > 1000  # no room while SLURM does not answer
    assert slurm.reap() == []
    with pytest.raises(RetryableLaunchError):  # the dataset stays queued, retried later
        slurm.launch(slurm_task(make_task))
