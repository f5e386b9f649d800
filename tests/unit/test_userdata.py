"""The user-data script: rendered from the task alone, and executed here by real bash."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from ncaas_dev.analysis import AnalysisRecord
from ncaas_dev.blueprint import parse_blueprint
from ncaas_dev.cloud.ec2.userdata import (
    USER_DATA_LIMIT,
    WATCHDOG_MARGIN_S,
    render_user_data,
    watchdog_seconds,
)
from ncaas_dev.launchers.base import DatasetTask
from ncaas_dev.launchers.ec2 import client_token, root_volume_gb


def make_task(**blueprint: object) -> DatasetTask:
    doc = {"analysis": "spike-detect", "groups": [{"name": "labA"}], **blueprint}
    record = AnalysisRecord(
        blueprint=parse_blueprint(doc, "test"),
        content_hash="h" * 64,
        image="ncaas/spike-detect:latest",
        image_id="sha256:" + "a" * 64,
    )
    return DatasetTask(
        bucket="spike-detect",
        group="labA",
        job="job_20261125T000000Z",
        dataset="rec 1 'quoted' $HOME.bin",
        data_key="labA/inputs/rec 1 'quoted' $HOME.bin",
        config_key="labA/configs/params.yaml",
        record=record,
        endpoint_url=None,
        region="eu-west-1",
    )


def run_user_data(tmp_path: Path, script: str, python: str, timeout: float = 20) -> str:
    """Execute ``script`` as cloud-init would, with this machine standing in for the AMI."""
    path = tmp_path / "user-data"
    path.write_text(script)
    poweroff = tmp_path / "poweroff"
    poweroff.write_text(f"#!/bin/sh\necho powered-off >> {tmp_path}/power.log\nkill -KILL 0\n")
    poweroff.chmod(0o755)
    env = {
        **os.environ,
        "NCAAS_HOME": str(tmp_path / "home"),
        "NCAAS_PYTHON": python,
        "NCAAS_POWEROFF": str(poweroff),
        "NCAAS_INSTANCE_ID": "i-0123456789abcdef0",
        "NCAAS_PREWARM": "0",
    }
    process = subprocess.run(
        ["/bin/bash", str(path)],
        env=env,
        capture_output=True,
        timeout=timeout,
        start_new_session=True,
        check=False,
    )
    return process.stdout.decode() + process.stderr.decode()


def fake_python(tmp_path: Path, body: str) -> str:
    """A python that runs ``body`` as the runner and records the boot-log shipping."""
    path = tmp_path / "python"
    bootlog = (
        f'[ "$2" = ncaas_dev.cloud.ec2.bootlog ] && {{ echo "$4" >> {tmp_path}/shipped; exit 0; }}'
    )
    path.write_text(f"#!/bin/bash\n{bootlog}\n{body}\n")
    path.chmod(0o755)
    return str(path)


def test_user_data_carries_the_task_and_the_watchdog() -> None:
    task = make_task(run={"timeout": 120})
    script = render_user_data(task)
    assert script.startswith("#!/bin/bash\n")
    assert task.model_dump_json() in script.splitlines()
    assert f"sleep {120 + WATCHDOG_MARGIN_S}" in script
    assert watchdog_seconds(task) == 120 + WATCHDOG_MARGIN_S
    assert 'AWS_DEFAULT_REGION="eu-west-1"' in script
    assert "/opt/ncaas/venv/bin/python" in script


def test_user_data_over_the_ec2_limit_is_refused() -> None:
    task = make_task(run={"env": {"BIG": "x" * USER_DATA_LIMIT}})
    with pytest.raises(ValueError, match=r"over EC2's 16384: shorten run.env"):
        render_user_data(task)


def test_user_data_runs_the_runner_once_then_powers_off(tmp_path: Path) -> None:
    task = make_task()
    python = fake_python(tmp_path, f'echo "$@" > {tmp_path}/args; cp "$3" {tmp_path}/task.json')
    console = run_user_data(tmp_path, render_user_data(task), python)
    args = (tmp_path / "args").read_text().split()
    assert args[:2] == ["-m", "ncaas_dev.runner"]
    assert args[3] == "ec2:i-0123456789abcdef0"
    # The task arrives byte for byte, quotes and dollar signs included.
    assert DatasetTask.model_validate_json((tmp_path / "task.json").read_text()) == task
    assert (tmp_path / "power.log").read_text() == "powered-off\n"
    assert "runner exited with code 0; powering off" in console
    # Issue 13, defect 12: cloud-init's output is shipped before the power-off.
    assert (tmp_path / "shipped").read_text() == "/var/log/cloud-init-output.log\n"


def test_watchdog_powers_off_a_runner_that_hangs(tmp_path: Path) -> None:
    python = fake_python(tmp_path, "sleep 60")
    started = time.monotonic()
    console = run_user_data(tmp_path, render_user_data(make_task(), watchdog=1), python)
    assert time.monotonic() - started < 15
    assert "watchdog: still running after 1 s, powering off" in console
    assert (tmp_path / "power.log").read_text() == "powered-off\n"
    assert (tmp_path / "shipped").read_text() == "/var/log/cloud-init-output.log\n"


@pytest.mark.parametrize(
    ("size", "volume", "expected"),
    [(0, 100, 100), (10 * 1024**3, 20, 36), (200 * 1024**3, 100, 416), (1, 8, 17)],
)
def test_root_volume_fits_the_dataset(size: int, volume: int, expected: int) -> None:
    assert root_volume_gb(size, volume) == expected


def test_client_token_is_stable_per_dataset_and_fits_ec2() -> None:
    a, b = make_task(), make_task()
    assert client_token(a) == client_token(b)
    assert len(client_token(a)) <= 64
    other = a.model_copy(update={"dataset": "rec2.bin"})
    assert client_token(other) != client_token(a)
