"""`ncaas-dev doctor` against the real engine, the session's LocalStack and Packer."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from ncaas_dev.blueprint import LoadedBlueprint

from .jobs import ncaas

pytestmark = pytest.mark.integration


def checks_of(stdout: str) -> dict[str, dict[str, str]]:
    return {c["name"]: c for c in json.loads(stdout)["checks"]}


def test_doctor_on_a_working_machine(
    cli_env: dict[str, str], dispatcher: int, probe: LoadedBlueprint
) -> None:
    done = ncaas(["doctor", str(probe.folder), "--json"], cli_env)
    checks = checks_of(done.stdout)
    for name in ("docker", "base image", "local stack", "dispatcher", "packer", "credentials"):
        assert checks[name]["level"] == "ok", checks[name]
    # Whichever Packer this machine has (Debian's is 1.6.6; a newer one is just as good).
    assert re.search(r"Packer v\d+\.\d+", checks["packer"]["detail"]), checks["packer"]
    # The probe was never baked: a warning that says how to bake, not a failure.
    assert checks["ami"]["level"] == "warn"
    assert checks["ami"]["fix"] == f"ncaas-dev bake {probe.folder}"
    assert done.returncode == 0 and json.loads(done.stdout)["ok"] is True


def test_doctor_without_packer_says_how_to_install_it(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("docker", "python3"):  # a PATH that has everything but Packer
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    done = ncaas(["doctor", "--json"], {**cli_env, "PATH": str(bin_dir)})
    packer = checks_of(done.stdout)["packer"]
    assert packer["level"] == "warn"
    assert packer["fix"] == "apt-get install packer"


def test_doctor_reports_an_ami_that_does_not_exist(
    cli_env: dict[str, str], probe: LoadedBlueprint, tmp_path: Path
) -> None:
    folder = tmp_path / "bp"
    shutil.copytree(probe.folder, folder)
    doc = yaml.safe_load((folder / "blueprint.yaml").read_text())
    doc["cloud"] = {"ami": "ami-00000000000000bad"}
    (folder / "blueprint.yaml").write_text(yaml.safe_dump(doc))
    done = ncaas(["doctor", str(folder), "--json"], cli_env)
    ami = checks_of(done.stdout)["ami"]
    assert ami["level"] == "fail"
    assert "ami-00000000000000bad (cloud.ami) does not exist" in ami["detail"]
    assert "ncaas-dev bake" in (ami["fix"] or "")
    assert done.returncode == 1


def test_doctor_cloud_without_credentials_fails_with_the_fix(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    env = {k: v for k, v in cli_env.items() if not k.startswith("AWS_")}
    env |= {
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",  # no instance role to find on this machine
    }
    done = ncaas(["doctor", "--cloud", "--json"], env)
    credentials = checks_of(done.stdout)["credentials"]
    assert credentials["level"] == "fail"
    assert "aws configure" in (credentials["fix"] or "")
    assert done.returncode == 1
