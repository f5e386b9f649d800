"""The runner's pure parts: how a dataset's ending is classified, and its container's contract."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ncaas_dev.containers import ExitInfo, pids_limit
from ncaas_dev.runs.runner import classify, container_spec, give_back, sandbox_ids
from ncaas_dev.settings import Settings
from ncaas_dev.status import State


def test_exit_zero_succeeds(make_task) -> None:
    assert classify(ExitInfo(exit_code=0, oom_killed=False), make_task()) == (
        State.SUCCEEDED,
        None,
    )


@pytest.mark.parametrize("code", [1, 3, 137, 255])
def test_non_zero_exit_fails_with_the_code_and_the_log(make_task, code: int) -> None:
    state, reason = classify(ExitInfo(exit_code=code, oom_killed=False), make_task())
    assert state == State.FAILED
    assert reason is not None
    assert f"exited with code {code}" in reason
    assert "logs/rec1.bin.log" in reason


def test_no_exit_is_a_timeout_naming_the_limit(make_task) -> None:
    state, reason = classify(None, make_task(run={"timeout": 90}))
    assert state == State.TIMED_OUT
    assert reason is not None and "timeout" in reason and "90 s" in reason
    assert "run.timeout" in reason


@pytest.mark.parametrize(("memory", "shown"), [("1g", "1g"), ("512m", "512m"), ("4g", "4g")])
def test_oom_fails_with_the_memory_limit(make_task, memory: str, shown: str) -> None:
    state, reason = classify(
        ExitInfo(exit_code=137, oom_killed=True), make_task(resources={"memory": memory})
    )
    assert state == State.FAILED
    assert reason is not None and "out of memory" in reason
    assert f"its {shown} limit" in reason
    assert "resources.memory" in reason


@pytest.mark.parametrize("memory", ["1.5g", "1536m"])
def test_oom_reason_shows_a_fractional_limit_exactly(make_task, memory: str) -> None:
    _, reason = classify(
        ExitInfo(exit_code=137, oom_killed=True), make_task(resources={"memory": memory})
    )
    assert reason is not None
    assert "its 1.5g limit" in reason or "its 1536m limit" in reason


def test_oom_wins_over_the_exit_code(make_task) -> None:
    state, reason = classify(ExitInfo(exit_code=0, oom_killed=True), make_task())
    assert state == State.FAILED and reason is not None and "out of memory" in reason


def test_container_environment(make_task, tmp_path: Path) -> None:
    spec = container_spec(make_task(), tmp_path)
    assert spec.environment == {
        "HOME": "/tmp",
        "NCAAS_DATA": "/ncaas/input/rec1.bin",
        "NCAAS_CONFIG": "",
        "NCAAS_OUTPUT": "/ncaas/output",
        "NCAAS_DATASET": "rec1.bin",
        "NCAAS_JOB": "job_20261124T203000Z",
        "NCAAS_ANALYSIS": "spike-detect",
        "NCAAS_GROUP": "labA",
    }


def test_config_is_mounted_read_only_and_named(make_task, tmp_path: Path) -> None:
    spec = container_spec(make_task(config_key="labA/configs/params.yaml"), tmp_path)
    assert spec.environment["NCAAS_CONFIG"] == "/ncaas/config/params.yaml"
    mounts = {m.target: (m.source, m.read_only) for m in spec.mounts}
    assert mounts == {
        "/ncaas/input": (tmp_path / "input", True),
        "/ncaas/config": (tmp_path / "config", True),
        "/ncaas/output": (tmp_path / "output", False),
    }


def test_without_config_there_is_no_config_mount(make_task, tmp_path: Path) -> None:
    mounts = {m.target: m.read_only for m in container_spec(make_task(), tmp_path).mounts}
    assert mounts == {"/ncaas/input": True, "/ncaas/output": False}


def test_run_env_is_added_but_cannot_override_ncaas_variables(make_task, tmp_path: Path) -> None:
    env = {"THREADS": "4", "NCAAS_DATA": "/etc/passwd", "NCAAS_JOB": "spoofed", "NCAAS_X": "ok"}
    spec = container_spec(make_task(run={"env": env}), tmp_path)
    assert spec.environment["THREADS"] == "4"
    assert spec.environment["NCAAS_X"] == "ok"
    assert spec.environment["NCAAS_DATA"] == "/ncaas/input/rec1.bin"
    assert spec.environment["NCAAS_JOB"] == "job_20261124T203000Z"


def test_resources_network_and_user(make_task, tmp_path: Path) -> None:
    spec = container_spec(make_task(resources={"cpus": 1.5, "memory": "2g"}), tmp_path)
    assert (spec.cpus, spec.memory, spec.gpu) == (1.5, 2 * 1024**3, False)
    assert spec.network is False
    assert spec.user == ("65534:65534" if os.getuid() == 0 else f"{os.getuid()}:{os.getgid()}")
    assert spec.image == "ncaas/spike-detect:latest"
    assert spec.command is None


def test_network_and_command_come_from_the_blueprint(make_task, tmp_path: Path) -> None:
    spec = container_spec(
        make_task(run={"network": True, "command": ["python3", "/app/main.py"]}), tmp_path
    )
    assert spec.network is True
    assert spec.network_name is None  # the engine's default network
    assert spec.command == ["python3", "/app/main.py"]


def test_a_networked_analysis_joins_the_configured_network(
    make_task, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NCAAS_ANALYSIS_NETWORK", "lab-net")
    network = Settings().analysis_network
    assert network == "lab-net"
    assert container_spec(make_task(run={"network": True}), tmp_path, network).network_name == (
        "lab-net"
    )
    monkeypatch.delenv("NCAAS_ANALYSIS_NETWORK")
    assert Settings().analysis_network is None


def test_container_labels_identify_the_dataset(make_task, tmp_path: Path) -> None:
    assert container_spec(make_task(), tmp_path).labels == {
        "ncaas.analysis": "spike-detect",
        "ncaas.group": "labA",
        "ncaas.job": "job_20261124T203000Z",
        "ncaas.dataset": "rec1.bin",
    }


def test_root_runs_the_analysis_as_nobody(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "getuid", lambda: 0)
    monkeypatch.setattr(os, "getgid", lambda: 0)
    assert sandbox_ids() == (65534, 65534)
    monkeypatch.setattr(os, "getuid", lambda: 1000)
    monkeypatch.setattr(os, "getgid", lambda: 1001)
    assert sandbox_ids() == (1000, 1001)


def test_run_env_may_set_home(make_task, tmp_path: Path) -> None:
    spec = container_spec(make_task(run={"env": {"HOME": "/work"}}), tmp_path)
    assert spec.environment["HOME"] == "/work"


@pytest.mark.parametrize(
    ("cpus", "limit"), [(0.5, 1024), (2, 1024), (8, 1024), (9, 1152), (96, 12288)]
)
def test_pids_limit_scales_with_cpus_from_a_floor(cpus: float, limit: int) -> None:
    assert pids_limit(cpus) == limit


@pytest.mark.skipif(os.getuid() != 0, reason="only root can hand files to another user")
def test_outputs_are_given_back_without_following_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "host-file"
    outside.write_text("not the analysis's")
    os.chown(outside, 4242, 4242)
    out = tmp_path / "output"
    (out / "sub").mkdir(parents=True)
    (out / "sub" / "result.txt").write_text("r")
    (out / "link").symlink_to(outside)
    for path in (out, out / "sub", out / "sub" / "result.txt"):
        os.chown(path, 65534, 65534)
    os.chown(out / "link", 65534, 65534, follow_symlinks=False)
    give_back(out)
    for path in (out, out / "sub", out / "sub" / "result.txt", out / "link"):
        assert (path.lstat().st_uid, path.lstat().st_gid) == (0, 0), path
    assert (outside.stat().st_uid, outside.stat().st_gid) == (4242, 4242)
