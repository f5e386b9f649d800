"""The AMI's system provisioning (images/ami/scripts/10-system.sh, issue 13, defect 9), run here
with stand-ins for systemctl, apt-get, cloud-init and docker on PATH: apt's timers and
unattended upgrades are masked before apt runs, a failing `apt-get update` is retried, and
Docker gets live-restore without losing what daemon.json held."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "images" / "ami" / "scripts" / "10-system.sh"
APT_UNITS = {"apt-daily.timer", "apt-daily-upgrade.timer", "unattended-upgrades.service"}


def _shim(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f'#!/bin/bash\necho "{name} $*" >> "$NCAAS_CALLS"\n{body}\n')
    path.chmod(0o755)


def _run_script(
    tmp_path: Path, shims: dict[str, str], path: str = os.environ["PATH"], **extra: str
) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    """10-system.sh as on an instance (systemd present, amazon-ebs), with ``shims`` (name:
    body) first on PATH; returns the run, the shims' call log and the daemon.json path."""
    if os.geteuid() != 0:
        pytest.skip("the script re-runs itself with sudo when not root")
    bin_dir, systemd = tmp_path / "bin", tmp_path / "systemd"
    bin_dir.mkdir()
    systemd.mkdir()
    calls, daemon_json = tmp_path / "calls", tmp_path / "docker" / "daemon.json"
    for name, body in shims.items():
        _shim(bin_dir, name, body)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{path}",
        "NCAAS_CALLS": str(calls),
        "NCAAS_SYSTEMD_DIR": str(systemd),
        "NCAAS_DOCKER_DAEMON_JSON": str(daemon_json),
        "PACKER_BUILDER_TYPE": "amazon-ebs",
        **extra,
    }
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True)
    return done, calls, daemon_json


def test_apt_is_masked_update_retried_and_docker_live_restores(tmp_path: Path) -> None:
    daemon_json = tmp_path / "docker" / "daemon.json"
    daemon_json.parent.mkdir()
    daemon_json.write_text(json.dumps({"runtimes": {"nvidia": {"path": "nvidia"}}}))
    failed_once = tmp_path / "failed-once"
    # apt-get update fails once, as when apt-daily holds the lists lock.
    apt_get = (
        f'if [[ " $* " == *" update "* ]] && [ ! -e {failed_once} ]; then '
        f"touch {failed_once}; exit 100; fi"
    )
    shims = {"apt-get": apt_get, "systemctl": "exit 0", "cloud-init": "exit 0"}
    done, calls, _ = _run_script(
        tmp_path, {**shims, "docker": "echo 27.0"}, NCAAS_APT_RETRY_SLEEP="0"
    )
    assert done.returncode == 0, done.stderr
    lines = calls.read_text().splitlines()
    mask = next(i for i, line in enumerate(lines) if line.startswith("systemctl mask"))
    first_apt = next(i for i, line in enumerate(lines) if line.startswith("apt-get"))
    assert mask < first_apt
    assert set(lines[mask].split()[2:]) >= APT_UNITS
    assert sum(1 for line in lines if line.startswith("apt-get") and " update" in line) == 2
    config = json.loads(daemon_json.read_text())
    assert config["live-restore"] is True and "nvidia" in config["runtimes"]
    assert lines.index("systemctl restart docker") > mask


def test_on_amazon_linux_dnf_installs_the_runners_python_and_apt_is_never_called(
    tmp_path: Path,
) -> None:
    """The ECS-optimized Amazon Linux 2023 a Batch analysis bakes from: dnf, Docker present."""
    shims = {name: "exit 0" for name in ("dnf", "systemctl", "cloud-init", "apt-get")}
    done, calls, daemon_json = _run_script(tmp_path, {**shims, "docker": "echo 25.0"})
    assert done.returncode == 0, done.stderr
    lines = calls.read_text().splitlines()
    assert "dnf -q -y install python3.11" in lines
    assert not any(line.startswith("apt-get") for line in lines)
    assert not any(line.startswith("dnf") and " docker" in line for line in lines)  # it has it
    assert json.loads(daemon_json.read_text())["live-restore"] is True


def test_a_gpu_analysis_on_plain_amazon_linux_is_refused_naming_the_gpu_base(
    tmp_path: Path,
) -> None:
    shims = {name: "exit 0" for name in ("dnf", "systemctl", "docker")}
    done, _, _ = _run_script(tmp_path, shims, "/usr/bin:/bin", NCAAS_GPU="true")
    assert done.returncode == 1
    assert "amazon:al2023-ami-ecs-gpu-hvm-*-x86_64" in done.stderr
