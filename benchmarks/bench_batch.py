"""Benchmark for docs/batch.md: the Batch launcher (moto's Batch) against the Docker launcher.

1. 20 datasets (each sleeps --sleep s) as one job at limits.max_concurrent_jobs 8, on Docker
   and then through the local Batch: wall time, the most running at once (the runners' own
   stamps) and the overhead per dataset (each dataset's submission-to-end time beyond the
   analysis's own run, averaged).
2. The projected cost per dataset and per 100 datasets of the bundled example
   (blueprints/spike-detect: 1 vCPU, 1 GiB on m5.large) on spot Batch, on-demand Batch and
   EC2-per-dataset, from the package's price table and the assumptions printed with it.

Runs a stack of its own (LocalStack on a free loopback port, its own state folder).

    .venv/bin/python benchmarks/bench_batch.py [--datasets 20] [--cap 8] [--sleep 5]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from bench_slurm import NCAAS, blueprint, run, stamps_overlap  # noqa: E402
from load import free_port  # noqa: E402

from ncaas_dev.pricing import hourly_price, parse_time  # noqa: E402

# Assumptions of the projection (docs/batch.md says where each comes from).
SPOT_SHARE = 0.35  # spot price / on-demand price: us-east-1 m5.large's usual range is 0.3-0.4
HOST_BOOT_S = 120  # a Batch host (ECS-optimized AMI) from launch to its first job
EC2_BOOT_S = 60  # an EC2-per-dataset instance from launch to the runner (docs/cloud-path.md)
IDLE_TAIL_S = 300  # Batch scales an idle managed environment down after minutes, billed
EXAMPLE_RUN_S = 5.0  # spike-detect: fetch, analysis, upload of one recording (measured locally)


def many(
    env: dict[str, str], folder: Path, launcher: str, work: Path, count: int, cap: int, sleep: float
) -> Any:
    data = []
    for n in range(count):
        path = work / f"{launcher}-rec{n:02d}.bin"
        path.write_bytes(os.urandom(1000))
        data.append(path)
    config = work / "sleep.json"
    config.write_text(json.dumps({"lines": 1, "sleep": sleep}))
    run(env, folder, launcher, data[:1], "--config", str(config))  # warm: dispatcher, queue
    started = time.perf_counter()
    doc = run(env, folder, launcher, data, "--config", str(config), "--out", str(work / "many"))
    wall = time.perf_counter() - started
    assert doc["state"] == "succeeded", doc
    created = parse_time(doc["created"]).timestamp()
    waits = []  # per dataset: the runner's own time (fetch, container, upload) past the sleep
    for ds in doc["datasets"].values():
        own = parse_time(ds["finished"]).timestamp() - parse_time(ds["started"]).timestamp()
        waits.append(own - sleep)
    return {
        "wall_s": round(wall, 2),
        "most_running": stamps_overlap(doc),
        "runner_overhead_per_dataset_s": round(sum(waits) / len(waits), 2),
        "ideal_wall_s": round(math.ceil(count / cap) * sleep, 1),
        "job_s": round(parse_time(doc["finished"]).timestamp() - created, 2),
    }


def projected_costs(run_s: float = EXAMPLE_RUN_S, count: int = 100, cap: int = 8) -> Any:
    """USD per dataset and per ``count`` datasets of the example, by where it runs."""
    on_demand = hourly_price("m5.large")  # 2 vCPUs, 8 GiB: two 1-vCPU datasets at once
    per_host = 2
    hosts = math.ceil(cap / per_host)
    busy = math.ceil(count / cap) * run_s  # the cap's waves, each as long as one run
    batch_hours = hosts * (HOST_BOOT_S + busy + IDLE_TAIL_S) / 3600
    ec2_hours = count * max(60, EC2_BOOT_S + run_s) / 3600  # per second, one-minute minimum

    def line(hours: float, price: float) -> dict[str, float]:
        total = hours * price
        return {"per_dataset_usd": round(total / count, 6), f"per_{count}_usd": round(total, 4)}

    return {
        "batch_spot": line(batch_hours, on_demand * SPOT_SHARE),
        "batch_on_demand": line(batch_hours, on_demand),
        "ec2_per_dataset": line(ec2_hours, on_demand),
        "assumptions": {
            "instance_type": "m5.large",
            "on_demand_usd_per_hour": on_demand,
            "spot_share_of_on_demand": SPOT_SHARE,
            "run_s": run_s,
            "cap": cap,
            "batch_host_boot_s": HOST_BOOT_S,
            "batch_idle_tail_s": IDLE_TAIL_S,
            "ec2_boot_s": EC2_BOOT_S,
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", type=int, default=20)
    parser.add_argument("--cap", type=int, default=8)
    parser.add_argument("--sleep", type=float, default=5.0, help="each dataset's run (s)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ncaas-bench-batch-"))
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "NCAAS_STATE_DIR": str(work / "state"),
        "NCAAS_BATCH_POLL_SECONDS": "0.5",
    }
    probe = blueprint(
        ROOT / "tests" / "fixtures" / "probe", work / "probe", "ncaas-bench-batch-probe", args.cap
    )
    report: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": f"{platform.node()}: {os.cpu_count()} cores, {platform.platform()}",
        "load_average_before": os.getloadavg(),
    }
    try:
        key = f"{args.datasets}_datasets_cap_{args.cap}_sleep_{args.sleep:g}s"
        report[key] = {
            launcher: many(env, probe, launcher, work, args.datasets, args.cap, args.sleep)
            for launcher in ("docker", "batch")
        }
        walls = {k: v["wall_s"] for k, v in report[key].items()}
        # What Batch adds per dataset: the wall times' difference over the datasets.
        report["batch_overhead_per_dataset_s"] = round(
            (walls["batch"] - walls["docker"]) / args.datasets, 2
        )
        report["load_average_after"] = os.getloadavg()
        report["projected_cost_spike_detect"] = projected_costs(cap=args.cap)
    finally:
        subprocess.run([NCAAS, "down"], env=env, capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
