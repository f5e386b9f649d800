"""The command line where it needs no services: bad blueprints, bad usage, init, --version."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from isolation import closed_endpoint

from ncaas_dev.blueprint import load_blueprint

# The command installed with the Python running the tests, not some other checkout's.
NCAAS_DEV = str(Path(sys.executable).parent / "ncaas-dev")


def ncaas_dev(*args: str, cwd: Path, state: Path, columns: int | None = 200):
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "AWS_ENDPOINT_URL")}
    env["NCAAS_STATE_DIR"] = str(state)
    # Nothing here may reach a service: point any stray call at a closed port.
    env["AWS_ENDPOINT_URL"] = closed_endpoint()
    if columns is not None:
        env["COLUMNS"] = str(columns)
    return subprocess.run(
        [NCAAS_DEV, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def run_cli(tmp_path: Path):
    state = tmp_path / "state"

    def run(*args: str, columns: int | None = 200) -> subprocess.CompletedProcess[str]:
        return ncaas_dev(*args, cwd=tmp_path, state=state, columns=columns)

    return run


def test_version(run_cli) -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == "0.1.0"


def test_bad_blueprint_exits_2_with_one_line_naming_file_and_field(
    run_cli, write_blueprint
) -> None:
    folder = write_blueprint("analysis: spike-detect\ngroups: [{name: labA}]\nrun: {timeout: -5}\n")
    result = run_cli("run", str(folder), "--data", "x")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert str(folder / "blueprint.yaml") in lines[0]
    assert "'run.timeout'" in lines[0] and "greater than 0" in lines[0]
    assert result.stdout == ""


def test_blueprint_typo_is_reported_before_anything_starts(run_cli, write_blueprint) -> None:
    folder = write_blueprint("analysis: spike-detect\ngroups: [{name: labA}]\nrun: {timout: 5}\n")
    result = run_cli("run", str(folder), "--data", "x")
    assert result.returncode == 2
    assert "'run.timout'" in result.stderr and "unknown field" in result.stderr
    assert "Traceback" not in result.stderr


def test_error_stays_on_one_line_at_the_default_width(run_cli, write_blueprint) -> None:
    folder = write_blueprint(
        "analysis: spike-detect\ngroups: [{name: labA}]\nrun: {timeout: -5}\n",
        name="a-blueprint-folder-with-a-rather-long-name-as-real-projects-have",
    )
    result = run_cli("run", str(folder), "--data", "x", columns=None)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_missing_blueprint_folder_exits_2(run_cli) -> None:
    result = run_cli("run", "blueprints-that-do-not-exist", "--data", "x")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "error: blueprints-that-do-not-exist: no blueprint here" in result.stderr


def test_unknown_option_exits_2(run_cli) -> None:
    result = run_cli("run", "--no-such-option")
    assert result.returncode == 2
    assert "No such option" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_command_exits_2(run_cli) -> None:
    result = run_cli("frobnicate")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_init_scaffolds_a_blueprint(run_cli, tmp_path: Path) -> None:
    result = run_cli("init", "my-analysis")
    assert result.returncode == 0, result.stderr
    assert "created my-analysis/" in result.stdout
    assert (tmp_path / "my-analysis" / "blueprint.yaml").is_file()
    assert load_blueprint(tmp_path / "my-analysis").blueprint.analysis == "my-analysis"


def test_init_with_a_bad_name_exits_2(run_cli) -> None:
    result = run_cli("init", "ab")
    assert result.returncode == 2
    assert "cannot name an analysis" in result.stderr
    assert "Traceback" not in result.stderr


def test_init_into_a_non_empty_folder_exits_2(run_cli, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "f").write_text("x")
    result = run_cli("init", "taken")
    assert result.returncode == 2
    assert "already exists and is not empty" in result.stderr
