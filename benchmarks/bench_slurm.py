"""Benchmark for docs/slurm.md: the SLURM launcher against the Docker launcher, in one run.

1. `ncaas-dev run` of an analysis that does nothing, `--launcher docker` then `--launcher slurm`
   (medians of --repeat warm runs each): what one SLURM job adds to a run.
2. 20 datasets (each sleeps --sleep s) as one job with limits.max_concurrent_jobs 8, on the
   single-node SLURM and then on Docker: wall time and the most running at once (SLURM's
   own view, squeue sampled every 0.2 s, and the runners' stamps).

Needs the local SLURM cluster (`make slurm`). Runs a stack of its own (LocalStack on a free
loopback port, its own state folder), so nothing else on the machine is touched.

    .venv/bin/python benchmarks/bench_slurm.py [--repeat 5] [--datasets 20] [--cap 8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NCAAS = str(ROOT / ".venv" / "bin" / "ncaas-dev")
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from bench_run import breakdown  # noqa: E402
from load import free_port  # noqa: E402


def blueprint(source: Path, folder: Path, analysis: str, cap: int) -> Path:
    shutil.copytree(source, folder)
    doc = yaml.safe_load((folder / "blueprint.yaml").read_text())
    doc["analysis"] = analysis
    doc["limits"] = {"max_concurrent_jobs": cap, "max_cost_usd": 1000}
    (folder / "blueprint.yaml").write_text(yaml.safe_dump(doc))
    return folder


def run(env: dict[str, str], folder: Path, launcher: str, data: list[Path], *extra: str) -> Any:
    args = [NCAAS, "run", str(folder), "--launcher", launcher, "--json"]
    for path in data:
        args += ["--data", str(path)]
    done = subprocess.run([*args, *extra], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"run --launcher {launcher} failed: {done.stderr[-1500:]}")
    return json.loads(done.stdout)


def timed_runs(env: dict[str, str], folder: Path, launcher: str, data: Path, n: int) -> list[float]:
    run(env, folder, launcher, [data])  # warm: the build, the dispatcher on this launcher
    times = []
    for _ in range(n):
        started = time.perf_counter()
        run(env, folder, launcher, [data], "--out", str(data.parent / "out"))
        times.append(time.perf_counter() - started)
    return times


class SlurmSampler:
    """Most of the analysis's jobs RUNNING at once in squeue, sampled every 0.2 s."""

    def __init__(self, analysis: str) -> None:
        self.analysis, self.most, self._stop = analysis, 0, threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            out = subprocess.run(
                ["squeue", "--me", "-h", "-t", "RUNNING", "-O", "Comment:"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            self.most = max(self.most, out.count(f'"bucket":"{self.analysis}"'))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.most


def stamps_overlap(doc: dict[str, Any]) -> int:
    from ncaas_dev.pricing import parse_time

    edges = []
    for ds in doc["datasets"].values():
        edges += [(parse_time(ds["started"]).timestamp(), 1)]
        edges += [(parse_time(ds["finished"]).timestamp(), -1)]
    running = most = 0
    for _, step in sorted(edges):
        running += step
        most = max(most, running)
    return most


def many(
    env: dict[str, str], folder: Path, launcher: str, work: Path, count: int, sleep: float
) -> dict[str, Any]:
    data = []
    for n in range(count):
        path = work / f"{launcher}-rec{n:02d}.bin"
        path.write_bytes(os.urandom(1000))
        data.append(path)
    config = work / "sleep.json"
    config.write_text(json.dumps({"lines": 1, "sleep": sleep}))
    run(env, folder, launcher, data[:1], "--config", str(config))  # warm
    sampler = SlurmSampler(yaml.safe_load((folder / "blueprint.yaml").read_text())["analysis"])
    started = time.perf_counter()
    doc = run(env, folder, launcher, data, "--config", str(config), "--out", str(work / "many"))
    wall = time.perf_counter() - started
    most_slurm = sampler.stop()
    assert doc["state"] == "succeeded", doc
    return {"wall_s": round(wall, 2), "most_running_squeue": most_slurm,
            "most_running_stamps": stamps_overlap(doc)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--datasets", type=int, default=20)
    parser.add_argument("--cap", type=int, default=8)
    parser.add_argument("--sleep", type=float, default=5.0, help="each dataset's run (s)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ncaas-bench-slurm-"))
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "NCAAS_STATE_DIR": str(work / "state"),
    }
    noop = blueprint(HERE / "noop", work / "noop", "ncaas-bench-slurm-noop", cap=4)
    probe = blueprint(
        ROOT / "tests" / "fixtures" / "probe", work / "probe", "ncaas-bench-slurm-probe", args.cap
    )
    empty = work / "empty.bin"
    empty.write_bytes(b"")
    report: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": f"{platform.node()}: {os.cpu_count()} cores, {platform.platform()}",
    }
    try:
        one: dict[str, list[float]] = {}
        for launcher in ("docker", "slurm"):
            one[launcher] = timed_runs(env, noop, launcher, empty, args.repeat)
        for launcher in ("docker", "slurm"):  # where one warm run's time goes
            started = time.time()
            doc = run(env, noop, launcher, [empty], "--out", str(work / "steps"))
            ended = time.time()
            status = Path(doc["results_dir"]) / "logs" / "status.json"
            report[f"steps_{launcher}"] = breakdown(json.loads(status.read_text()), started, ended)
        medians = {k: statistics.median(v) for k, v in one.items()}
        report["one_dataset_run_s"] = {
            k: {"median": round(medians[k], 2), "runs": [round(x, 2) for x in v]}
            for k, v in one.items()
        }
        report["slurm_overhead_s"] = round(medians["slurm"] - medians["docker"], 2)
        report[f"{args.datasets}_datasets_cap_{args.cap}_sleep_{args.sleep:g}s"] = {
            launcher: many(env, probe, launcher, work, args.datasets, args.sleep)
            for launcher in ("slurm", "docker")
        }
    finally:
        subprocess.run([NCAAS, "down"], env=env, capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
