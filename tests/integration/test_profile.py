"""`profile` on a fixture analysis that allocates a known amount of memory: the measured peak,
the recommendation (the cheapest type in the table that fits), `--write` keeping comments,
and a failing run that recommends nothing."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import ncaas_dev
from ncaas_dev.blueprint import load_blueprint
from ncaas_dev.containers import Engine
from ncaas_dev.pricing import price_table
from ncaas_dev.profiling.recommend import SPEC_TABLE
from ncaas_dev.settings import Settings

from .api_env import point_at
from .jobs import ncaas, new_analysis, remove_image

pytestmark = pytest.mark.integration
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "memhog"
MIB = 2**20
ALLOC_MIB = 300


@pytest.fixture(scope="module")
def memhog(tmp_path_factory: pytest.TempPathFactory, engine: Engine) -> Iterator[Path]:
    """The fixture under a name of this session's, its comments intact (copied as text)."""
    folder = tmp_path_factory.mktemp("memhog") / "memhog"
    shutil.copytree(FIXTURE, folder)
    name = new_analysis("ncaas-memhog")
    path = folder / "blueprint.yaml"
    path.write_text(path.read_text().replace("analysis: ncaas-memhog", f"analysis: {name}"))
    yield folder
    remove_image(engine, f"ncaas/{name}:latest")


def _config(tmp_path: Path, **cfg: object) -> tuple[Path, Path]:
    data = tmp_path / "rec.bin"
    data.write_bytes(b"x" * 100)
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps(cfg))
    return data, config


def _cheapest_fitting(memory: int, cpus: int) -> tuple[float, set[str]]:
    """Independently of the code under test: the lowest price of a non-burstable type with
    that much memory and as many vCPUs, and the types at that price."""
    specs = json.loads(SPEC_TABLE.read_text())["types"]
    prices = price_table()
    fitting = {
        name: prices[name]
        for name, spec in specs.items()
        if not spec.get("burstable")
        and spec["memory_gib"] * 2**30 >= memory
        and spec["vcpus"] >= cpus
    }
    low = min(fitting.values())
    return low, {n for n, p in fitting.items() if p == low}


def test_profile_measures_the_peak_and_recommends_the_cheapest_fit(
    memhog: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    point_at(monkeypatch, settings)
    data, config = _config(tmp_path, alloc_mb=ALLOC_MIB, hold=1.5)
    original = (memhog / "blueprint.yaml").read_text()
    report = ncaas_dev.profile(memhog, data, config, write=True)
    assert report.succeeded and report.exit_code == 0, report.reasoning
    peak = report.peak_memory_bytes
    assert isinstance(peak, int)
    assert 0.9 * ALLOC_MIB * MIB <= peak <= 1.1 * ALLOC_MIB * MIB, peak / MIB
    assert report.headroom == 1.5 and report.memory_needed_bytes >= peak * 1.5
    assert report.cpu_seconds > 0 and report.wall_seconds >= 1.5
    assert report.output_bytes == 1000
    low, cheapest = _cheapest_fitting(report.memory_needed_bytes, report.cpus_needed)
    assert report.recommended_instance_type in cheapest
    assert report.price_per_hour_usd == low
    assert (report.recommended_memory_bytes or 0) >= peak * 1.5
    assert report.cost_per_dataset_usd == round(low * 60 / 3600, 4)  # one-minute minimum
    assert report.cost_per_100_datasets_usd == pytest.approx(100 * report.cost_per_dataset_usd)
    assert any("1.5" in line for line in report.reasoning)

    text = (memhog / "blueprint.yaml").read_text()
    comments = [line.split("#", 1)[1] for line in original.splitlines() if "#" in line]
    for comment in comments:
        assert comment in text, comment
    written = load_blueprint(memhog).blueprint
    assert written.resources.cpus == report.cpus_needed
    assert written.resources.memory == report.memory_needed_bytes
    assert written.cloud.instance_type == report.recommended_instance_type


def test_profile_json_and_a_failing_run_recommends_nothing(
    memhog: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    data, config = _config(tmp_path, alloc_mb=20, hold=0.2)
    args = ["profile", str(memhog), "--data", str(data), "--config", str(config)]
    done = ncaas([*args, "--json"], cli_env)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert isinstance(doc["peak_memory_bytes"], int) and doc["peak_memory_bytes"] > 20 * MIB
    for key in ("cpu_seconds", "wall_seconds", "recommended_instance_type", "cost_per_dataset_usd"):
        assert doc[key] is not None, key

    before = (memhog / "blueprint.yaml").read_text()
    config.write_text(json.dumps({"alloc_mb": 10, "hold": 0, "exit": 3}))
    failed = ncaas([*args, "--write", "--json"], cli_env)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    doc = json.loads(failed.stdout)
    assert doc["succeeded"] is False and "exited with code 3" in doc["reason"]
    assert doc["recommended_instance_type"] is None and doc["cost_per_dataset_usd"] is None
    assert "profiled run failed" in failed.stderr
    assert (memhog / "blueprint.yaml").read_text() == before  # nothing written

    text = ncaas(["profile", str(memhog), "--data", str(data)], cli_env)
    assert text.returncode == 0, text.stderr
    assert "recommend" in text.stdout and "per 100 datasets" in text.stdout
    assert "headroom   1.5x" in text.stdout
