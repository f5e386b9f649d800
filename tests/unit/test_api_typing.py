"""A user's script that uses the API passes `mypy --strict` against the package as installed
(a real wheel, so ``py.typed`` and the lazy exports are what a user gets), and a type error
in such a script is caught."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

USER_SCRIPT = """
from pathlib import Path

import ncaas_dev


def main() -> None:
    bp = ncaas_dev.load_blueprint("blueprints/spike-detect")
    image: str = ncaas_dev.build(bp)
    job: ncaas_dev.Job = ncaas_dev.run(bp, data=["rec.bin"], config="params.yaml")
    state: ncaas_dev.State = job.state
    reason: str | None = job.reason
    cost: float | None = job.cost_usd
    for name, ds in job.datasets.items():
        code: int | None = ds.exit_code
        print(name, code)
    lines: list[str] = list(job.logs("rec.bin"))
    folder: Path = job.download("results/")
    later = ncaas_dev.submit("spike-detect", data=["labA/inputs/rec.bin"], group="labA")
    final: ncaas_dev.State = later.wait(timeout=600)
    names = [j.name for j in ncaas_dev.jobs("spike-detect", group="labA")]
    stack: ncaas_dev.StackStatus = ncaas_dev.up()
    running: bool = stack["dispatcher"]["running"]
    stopped: dict[str, bool] = ncaas_dev.down()
    ami: str = ncaas_dev.bake(bp, cloud=False)
    outputs: dict[str, str] = ncaas_dev.deploy(bp, cloud=False)
    report: ncaas_dev.ProfileReport = ncaas_dev.profile(bp, data="rec.bin", write=False)
    peak: int = report.peak_memory_bytes
    kind: str | None = report.recommended_instance_type
    code_: int = ncaas_dev.shell(bp, command="true")

    def show(event: ncaas_dev.Progress) -> None:
        print(event.kind, event.message)

    ncaas_dev.run(bp, data=[Path("rec.bin")], on_progress=show)
    try:
        ncaas_dev.load_blueprint("nowhere")
    except ncaas_dev.NcaasError as e:
        hint: str | None = e.hint
        print(e.message, hint, e.exit_code)
    print(image, state, reason, cost, lines, folder, final, names, running, stopped, ami)
    print(outputs, peak, kind, code_)
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package built as a wheel and installed (without dependencies) into a folder."""
    site = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), ROOT],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (site / "ncaas_dev" / "py.typed").is_file()
    return site


def _mypy(script: Path, site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(script.name)],
        cwd=script.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_user_script_passes_mypy_strict(installed: Path, tmp_path: Path) -> None:
    script = tmp_path / "analysis_script.py"
    script.write_text(USER_SCRIPT)
    done = _mypy(script, installed)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_type_error_in_a_user_script_is_caught(installed: Path, tmp_path: Path) -> None:
    script = tmp_path / "wrong.py"
    script.write_text(
        "import ncaas_dev\n"
        "job = ncaas_dev.submit('a', data=['labA/inputs/x'])\n"
        "name: int = job.name\n"
        "ncaas_dev.run('bp', data='not-a-list', confg=None)\n"
    )
    done = _mypy(script, installed)
    assert done.returncode == 1
    assert 'has type "str", variable has type "int"' in done.stdout
    assert 'Unexpected keyword argument "confg"' in done.stdout
