"""Benchmarks for docs/benchmarks.md: overhead of `ncaas-dev run`, first log line, transfers.

Runs against the local stack (`ncaas-dev up` is done for you) on this machine; prints a
Markdown table. Sizes are bounded; everything stays on loopback.

    .venv/bin/python benchmarks/bench_run.py [--gib 1] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = ROOT / ".venv" / "bin"
NOOP = HERE / "noop"
PROBE = ROOT / "tests" / "fixtures" / "probe"


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (MiB) of one child process."""
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        stderr = child.stderr.read().decode() if child.stderr else ""
        raise SystemExit(f"{' '.join(command)} failed ({child.returncode}): {stderr[-500:]}")
    return elapsed, usage.ru_maxrss // 1024


def median(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}"


def _stamp(value: str | None) -> float:
    from datetime import datetime

    return datetime.fromisoformat((value or "").replace("Z", "+00:00")).timestamp()


def breakdown(doc: dict[str, Any], started: float, ended: float) -> list[str]:
    """Where one warm run's time went, from the job's own stamps (this machine's clock)."""
    (ds,) = doc["datasets"].values()
    container = next(
        _stamp(str(e["time"])) for e in doc["events"] if "analysis started on" in str(e["message"])
    )
    marks = [
        (
            "CLI start → job folder created (start-up, build check, stack check, upload, "
            "submission, S3 event, admission)",
            started,
            _stamp(str(doc["created"])),
        ),
        (
            "job folder created → dataset claimed for launch",
            _stamp(str(doc["created"])),
            _stamp(ds["claimed_at"]),
        ),
        (
            "claimed → runner's first write (a runner forked for the task)",
            _stamp(ds["claimed_at"]),
            _stamp(ds["started"]),
        ),
        (
            "runner's first write → container started (input download, container create/start)",
            _stamp(ds["started"]),
            container,
        ),
        (
            "container started → dataset finished (run, outputs, status)",
            container,
            _stamp(ds["finished"]),
        ),
        (
            "dataset finished → CLI exit (end.txt seen, download, summary)",
            _stamp(ds["finished"]),
            ended,
        ),
    ]
    return [f"| {label} | {end - begin:.3f} |" for label, begin, end in marks]


def bench_overhead(repeat: int, work: Path, ncaas: str) -> list[str]:
    data = work / "empty.bin"
    data.write_bytes(b"")
    run = [ncaas, "run", str(NOOP), "--data", str(data), "--out", str(work / "r")]
    docker = ["docker", "run", "--rm", "--network", "none", "ncaas/ncaas-bench-noop:latest", "true"]
    timed(run)  # warm up: builds, provisions, starts the command server
    run_s, docker_s = [], []
    for _ in range(repeat):  # interleaved, so both see the same machine
        run_s.append(timed(run)[0])
        docker_s.append(timed(docker)[0])
    started = time.time()
    out = subprocess.run([*run, "--json"], capture_output=True, check=True, text=True).stdout
    ended = time.time()
    status = Path(json.loads(out)["results_dir"]) / "logs" / "status.json"
    steps = breakdown(json.loads(status.read_text()), started, ended)
    extra = statistics.median(run_s) - statistics.median(docker_s)
    print(
        "run",
        [round(x, 2) for x in run_s],
        "docker",
        [round(x, 2) for x in docker_s],
        file=sys.stderr,
    )
    return [
        f"| `ncaas-dev run`, analysis that does nothing (median of {repeat}) "
        f"| {median(run_s)} s | |",
        f"| `docker run --rm` of the same image (median of {repeat}) | {median(docker_s)} s | |",
        f"| overhead of `ncaas-dev run` over `docker run` | {extra:.2f} s | "
        f"target ≤ 0.3 s: {'met' if extra <= 0.3 else 'missed'} |",
        "",
        "| step of one warm `ncaas-dev run` | seconds |",
        "|---|---|",
        *steps,
        "",
        "| measure | result | note |",
        "|---|---|---|",
    ]


def bench_first_line(repeat: int, work: Path) -> list[str]:
    sys.path.insert(0, str(ROOT))
    from ncaas_dev.aws import s3_client
    from ncaas_dev.blueprint import load_blueprint
    from ncaas_dev.client import AnalysisClient
    from ncaas_dev.settings import Settings
    from ncaas_dev.storage import Storage

    subprocess.run(
        [str(BIN / "ncaas-dev"), "up", str(PROBE)], check=True, stdout=subprocess.DEVNULL
    )
    loaded = load_blueprint(PROBE)
    settings = Settings.from_env()
    storage = Storage(s3_client(settings), settings.endpoint_url)
    client = AnalysisClient(storage, loaded.blueprint.analysis)
    storage.put_bytes(client.bucket, "labA/inputs/first.bin", b"x")
    storage.put_json(client.bucket, "labA/configs/first.json", {"lines": 1, "sleep": 3})
    to_line, after_start, to_container = [], [], []
    for _ in range(repeat):
        submitted = client.submit("labA", ["labA/inputs/first.bin"], "labA/configs/first.json")
        t0, written = time.perf_counter(), time.time()
        job = None
        while job is None:
            job = client.job_of(submitted)
            time.sleep(0.02)
        started_at = None
        while True:
            if started_at is None:
                ds = client.status("labA", job).datasets["first.bin"]
                if ds.runner and ds.runner.startswith("docker:") and "pid" not in ds.runner:
                    started_at = time.perf_counter()
            if b"line 0" in client.log_since("labA", job, "first.bin", 0):
                t1 = time.perf_counter()
                break
            time.sleep(0.02)
        to_line.append(t1 - t0)
        after_start.append(t1 - (started_at or t1))
        while not client.finished("labA", job):
            time.sleep(0.2)
        status = client.status("labA", job)
        container = next(e.time for e in status.events if "analysis started on" in e.message)
        to_container.append(_stamp(container) - written)
    return [
        f"| submission written → analysis container started (median of {repeat}) "
        f"| {median(to_container)} s | target ≤ 0.15 s: "
        f"{'met' if statistics.median(to_container) <= 0.15 else 'missed'} |",
        f"| submission written → first log line readable in S3 (median of {repeat}) "
        f"| {median(to_line)} s | |",
        f"| container started → its first log line readable in S3 (median of {repeat}) "
        f"| {median(after_start)} s | target: within 2 s |",
    ]


def bench_transfers(gib: float, work: Path) -> list[str]:
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "http://localhost:4566")
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    big = work / "big.bin"
    size = int(gib * 1024**3)
    with big.open("wb") as f:
        chunk = os.urandom(16 * 1024**2)
        for _ in range(size // len(chunk)):
            f.write(chunk)
    bucket = "ncaas-probe"
    py = str(BIN / "python")
    transfer = str(HERE / "transfer.py")
    aws = [str(BIN / "aws"), "--endpoint-url", endpoint, "s3", "cp", "--only-show-errors"]
    rows = []
    for label, command in [
        ("ncaas-dev upload", [py, transfer, "up", str(big), bucket, "bench/big-ncaas.bin"]),
        ("`aws s3 cp` upload", [*aws, str(big), f"s3://{bucket}/bench/big-aws.bin"]),
        (
            "ncaas-dev download",
            [py, transfer, "down", str(work / "d1"), bucket, "bench/big-ncaas.bin"],
        ),
        ("`aws s3 cp` download", [*aws, f"s3://{bucket}/bench/big-aws.bin", str(work / "d2")]),
    ]:
        seconds, rss = timed(command, env)
        rows.append(
            f"| {label}, {gib:g} GiB | {size / 1024**2 / seconds:.0f} MiB/s | peak RSS {rss} MiB |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument(
        "--ncaas", default=str(BIN / "ncaas-dev"), help="the ncaas-dev whose `run` is timed"
    )
    parser.add_argument("--overhead-only", action="store_true", help="only the run overhead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(
        dir=ROOT / "build" if (ROOT / "build").exists() else None
    ) as tmp:
        work = Path(tmp)
        rows = ["| measure | result | note |", "|---|---|---|"]
        rows += bench_overhead(args.repeat, work, args.ncaas)
        if not args.overhead_only:
            rows += bench_first_line(args.repeat, work)
            rows += bench_transfers(args.gib, work)
    print("\n".join(rows))
    print(json.dumps({"cpus": os.cpu_count(), "python": sys.version.split()[0]}))


if __name__ == "__main__":
    main()
