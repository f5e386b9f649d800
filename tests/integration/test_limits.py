"""Limits hold under load: the concurrency cap across jobs, the budget, lost runners."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

import pytest

from ncaas_dev.blueprint import LoadedBlueprint
from ncaas_dev.budget import ledger_key
from ncaas_dev.containers import Engine
from ncaas_dev.pricing import hourly_price, parse_time, run_cost
from ncaas_dev.settings import Settings
from ncaas_dev.status import JobStatus, State
from ncaas_dev.storage import Storage

from .jobs import Lab, assert_no_dataset_left_open
from .test_analysis_outcomes import variant_lab

pytestmark = pytest.mark.integration
CAP_DATASETS = int(os.environ.get("NCAAS_CAP_DATASETS", "50"))


def max_overlap(statuses: Iterable[JobStatus]) -> int:
    """Most datasets running at once, from the runners' own started/finished stamps."""
    edges: list[tuple[float, int]] = []
    for status in statuses:
        for ds in status.datasets.values():
            assert ds.started and ds.finished, f"{status.job}: a dataset never ran"
            edges.append((parse_time(ds.started).timestamp(), 1))
            edges.append((parse_time(ds.finished).timestamp(), -1))
    running = most = 0
    for _, step in sorted(edges):  # at equal times an end (-1) sorts before a start
        running += step
        most = max(most, running)
    return most


def launches(status: JobStatus, dataset: str) -> int:
    """How many times the dataset's analysis container was started (from the job's log)."""
    return sum(1 for e in status.events if e.message.startswith(f"{dataset}: analysis started on"))


def analysis_containers(engine: Engine, analysis: str) -> list[object]:
    return list(
        engine.client.containers.list(all=True, filters={"label": f"ncaas.analysis={analysis}"})
    )


class DockerSampler:
    """Counts the analysis's running containers every 0.1 s, in a thread, while a test runs."""

    def __init__(self, engine: Engine, analysis: str) -> None:
        self.engine, self.analysis = engine, analysis
        self.most = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            # sparse: the engine's own list, no inspect per container (one that ends between
            # the list and its inspect would raise NotFound in this thread).
            running = self.engine.client.containers.list(
                sparse=True,
                filters={"label": f"ncaas.analysis={self.analysis}", "status": "running"},
            )
            self.most = max(self.most, len(running))
            self._stop.wait(0.1)

    def __enter__(self) -> DockerSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def test_concurrency_cap_holds_across_jobs(
    storage: Storage,
    settings: Settings,
    probe: LoadedBlueprint,
    dispatcher: int,
    engine: Engine,
) -> None:
    """50 datasets in 5 submissions at once, cap 4: all end, never more than 4 at a time."""
    lab = variant_lab(storage, settings, probe, "cap", limits={"max_concurrent_jobs": 4})
    per_submission = CAP_DATASETS // 5
    # Long enough that four runs overlap even when a busy machine starts runners slowly.
    config = lab.config(lines=1, sleep=1.5)
    submitted = [
        lab.submit(dataname=[lab.dataset(100) for _ in range(per_submission)], configname=config)
        for _ in range(5)
    ]
    started = time.monotonic()
    saw_waiting = False
    with DockerSampler(engine, lab.bucket) as sampler:
        jobs = [lab.wait_job(s) for s in submitted]
        saw_waiting = "WAITING: waiting for a free slot (limits.max_concurrent_jobs is 4)" in (
            lab.text(lab.paths(jobs[-1]).certificate)
        )
        finals = [lab.wait_end(job, timeout=240) for job in jobs]
    elapsed = time.monotonic() - started
    assert all(f.state == State.SUCCEEDED for f in finals)
    assert sum(len(f.datasets) for f in finals) == 5 * per_submission
    twice = [(f.job, n) for f in finals for n in f.datasets if launches(f, n) != 1]
    assert not twice, twice
    assert max_overlap(finals) == 4, "the cap must hold and be used"
    assert 1 <= sampler.most <= 4
    assert saw_waiting
    print(f"\n{5 * per_submission} datasets, cap 4: {elapsed:.1f} s, docker max {sampler.most}")


def test_budget_is_costed_recorded_and_enforced(
    storage: Storage, settings: Settings, probe: LoadedBlueprint, dispatcher: int
) -> None:
    # m5.xlarge at $0.192/h and run.timeout 60 s: each dataset may cost $0.0032 (the 60 s
    # minimum); a $0.01 limit fits three datasets and no fourth.
    lab = variant_lab(
        storage,
        settings,
        probe,
        "b",
        limits={"max_cost_usd": 0.01},
        cloud={"instance_type": "m5.xlarge"},
    )
    too_many = lab.run(dataname=[lab.dataset() for _ in range(4)])
    assert too_many.state == State.REJECTED
    reason = too_many.reason or ""
    assert "budget exceeded" in reason and "$0.0000" in reason  # spent
    assert "$0.0128" in reason and "$0.01" in reason  # projected, limit
    assert "4 dataset(s) x m5.xlarge at $0.192/h x run.timeout 60 s" in reason
    assert "REASON: budget exceeded" in lab.text(lab.paths(too_many.job).certificate)
    assert not any(d.started for d in too_many.datasets.values())  # nothing ran
    assert_no_dataset_left_open(too_many)

    # Three fit; while they run, their reservation keeps a fourth out.
    first = lab.submit(dataname=[lab.dataset() for _ in range(3)], configname=lab.config(sleep=1))
    first_job = lab.wait_job(first)
    meanwhile = lab.run(dataname=lab.dataset())
    assert meanwhile.state == State.REJECTED and "reserved" in (meanwhile.reason or "")
    assert_no_dataset_left_open(meanwhile)
    done = lab.wait_end(first_job)
    assert done.state == State.SUCCEEDED
    price = hourly_price("m5.xlarge")
    for ds in done.datasets.values():
        runtime = (parse_time(ds.finished or "") - parse_time(ds.started or "")).total_seconds()
        assert ds.cost_usd == run_cost(price, runtime) > 0
    assert done.cost_usd == pytest.approx(sum(d.cost_usd or 0 for d in done.datasets.values()))
    assert done.provenance["instance_type"] == "m5.xlarge"
    assert done.provenance["price_usd_per_hour"] == price

    ledger, _ = storage.get_json(lab.bucket, ledger_key("labA"))
    assert ledger["reserved"] == {}
    assert ledger["spent_usd"] == pytest.approx(done.cost_usd)
    assert set(ledger["charges"]) == {f"{done.job}/{name}" for name in done.datasets}

    # Spent $0.0096 of $0.01: one more dataset would pass the limit; another group has its own.
    after = lab.run(dataname=lab.dataset())
    assert after.state == State.REJECTED
    assert f"spent ${done.cost_usd:.4f}" in (after.reason or "")
    other = Lab(storage, lab.bucket, group="labB")
    assert other.run(dataname=other.dataset()).state == State.SUCCEEDED


def test_racing_submissions_cannot_overspend(
    storage: Storage, settings: Settings, probe: LoadedBlueprint, dispatcher: int
) -> None:
    """Ten one-dataset submissions at once against a budget for three: three are accepted."""
    lab = variant_lab(storage, settings, probe, "b2", limits={"max_cost_usd": 0.0096})
    data = [lab.dataset() for _ in range(10)]
    submitted = [lab.submit(dataname=key) for key in data]
    finals = [lab.wait_end(lab.wait_job(s)) for s in submitted]
    states = sorted(f.state.value for f in finals)
    assert states == ["rejected"] * 7 + ["succeeded"] * 3


def test_unknown_instance_type_is_refused_with_a_clear_reason(
    storage: Storage, settings: Settings, probe: LoadedBlueprint, dispatcher: int
) -> None:
    lab = variant_lab(storage, settings, probe, "u", cloud={"instance_type": "x9.huge"})
    status = lab.run(dataname=lab.dataset())
    assert status.state == State.REJECTED
    reason = status.reason or ""
    assert "cannot check the budget" in reason and "'x9.huge'" in reason


def runner_record(settings: Settings, lab: Lab, job: str, dataset: str) -> Path:
    return settings.state_dir / "runners" / lab.bucket / lab.group / job / f"{dataset}.runner.json"


def test_a_vanished_runner_ends_its_dataset_failed_as_lost(
    storage: Storage,
    settings: Settings,
    probe: LoadedBlueprint,
    dispatcher: int,
    engine: Engine,
) -> None:
    lab = variant_lab(storage, settings, probe, "lost")
    data = lab.dataset()
    name = data.rsplit("/", 1)[1]
    job = lab.wait_job(lab.submit(dataname=data, configname=lab.config(lines=1, sleep=60)))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ds = lab.client.status("labA", job).datasets[name]
        if ds.state == State.RUNNING and analysis_containers(engine, lab.bucket):
            break
        time.sleep(0.1)
    record = json.loads(runner_record(settings, lab, job, name).read_text())
    os.killpg(int(record["pid"]), signal.SIGKILL)  # the runner, not its container
    killed = time.monotonic()
    final = lab.wait_end(job, timeout=30)
    noticed = time.monotonic() - killed
    ds = final.datasets[name]
    assert final.state == State.FAILED and ds.state == State.FAILED
    assert "runner lost" in (ds.reason or "") and "signal 9" in (ds.reason or "")
    assert noticed < 10
    assert analysis_containers(engine, lab.bucket) == []  # its container did not outlive it
    assert not runner_record(settings, lab, job, name).exists()
    print(f"\nlost runner noticed in {noticed:.1f} s")


def load_benchmark() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "load.py"
    spec = importlib.util.spec_from_file_location("ncaas_load_benchmark", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_load_benchmark_small_every_submission_ends_exactly_once(
    storage: Storage, settings: Settings, probe: LoadedBlueprint, dispatcher: int
) -> None:
    """`benchmarks/load.py`'s own code, 20 submissions at once against the session's stack."""
    lab = variant_lab(storage, settings, probe, "load")
    result = load_benchmark().run_load(storage, lab.bucket, "labA", count=20, timeout=120)
    assert result.problems == []
    assert (result.count, result.ended) == (20, 20)
    assert result.jobs_per_submission == {1: 20} and result.runs_per_dataset == {1: 20}
    assert result.states == {"succeeded": 20}
    for name in ("written_to_job_folder", "written_to_running", "written_to_end"):
        figures = result.latency_s[name]
        assert 0 < figures["p50"] <= figures["p90"] <= figures["p99"] <= figures["max"]
    print(f"\nload, 20 submissions: {result.throughput_accepted_per_s} accepted/s")
