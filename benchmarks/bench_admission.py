"""Admission: how fast the dispatcher turns submissions into job folders, and what it costs.

On a LocalStack of its own (free loopback port, own state folder) with the no-op analysis
(``benchmarks/noop``, cap 4), in one run:

- LocalStack's own ceiling: simple requests per second (HEAD and PUT of small objects).
- S3 requests per admission (the admission path, counted on its client) and per dataset
  (the launch claim plus the runner's own requests), for a one-dataset submission.
- Burst: ``--burst`` submissions written at once; throughput from the first write to the
  last job folder's creation (its status.json ``created`` stamp).
- Steady: submissions at ``--rate`` per second for ``--seconds``; admission latency
  percentiles (written -> job folder created).
- Memory: the dispatcher's RSS over ``--soak`` more submissions (rejected at admission for a
  missing input, so no container runs), sampled after the first 200 and at the end.

All stamps come from this machine's clock. Everything stays on loopback.

    .venv/bin/python benchmarks/bench_admission.py [--burst 100] [--rate 10] [--seconds 10]
        [--soak 2000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from counting import Counted  # noqa: E402
from load import free_port, noop_blueprint, percentiles, stop_stack  # noqa: E402

from ncaas_dev import budget, jobstore  # noqa: E402
from ncaas_dev.analysis import AnalysisRecord  # noqa: E402
from ncaas_dev.aws import sqs_client  # noqa: E402
from ncaas_dev.client import AnalysisClient, Submitted  # noqa: E402
from ncaas_dev.containers import Engine, connect  # noqa: E402
from ncaas_dev.dispatch.admission import Admission  # noqa: E402
from ncaas_dev.events import ObjectCreated  # noqa: E402
from ncaas_dev.lastseen import LastSeen  # noqa: E402
from ncaas_dev.local.provision import QUEUE_NAME, provision  # noqa: E402
from ncaas_dev.local.stack import PidFile, start_dispatcher, start_localstack  # noqa: E402
from ncaas_dev.pricing import parse_time  # noqa: E402
from ncaas_dev.runs.runner import Runner  # noqa: E402
from ncaas_dev.settings import Settings  # noqa: E402
from ncaas_dev.storage import Storage  # noqa: E402

GROUP = "bench"


def ceiling(storage: Storage, bucket: str, n: int = 600, threads: int = 8) -> dict[str, float]:
    key = f"{GROUP}/inputs/ceiling.bin"
    storage.put_bytes(bucket, key, b"x")
    result = {}
    for name, call in (
        ("head_per_s", lambda _: storage.head(bucket, key)),
        ("put_per_s", lambda i: storage.put_bytes(bucket, f"{key}.{i % 50}", b"x" * 100)),
    ):
        with ThreadPoolExecutor(threads) as pool:
            started = time.perf_counter()
            list(pool.map(call, range(n)))
            result[name] = round(n / (time.perf_counter() - started), 1)
    return result


def write_submission(storage: Storage, bucket: str, data_key: str, tag: str) -> tuple[str, float]:
    key = f"{GROUP}/submissions/{tag}-{secrets.token_hex(6)}_submit.json"
    storage.put_bytes(bucket, key, json.dumps({"dataname": data_key}).encode())
    return key, time.time()


def created_at(client: AnalysisClient, keys: dict[str, float], timeout: float) -> dict[str, float]:
    """Each submission's job folder creation time (status.json ``created``), once it exists."""
    found: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(found) < len(keys) and time.monotonic() < deadline:
        for key in keys:
            if key in found:
                continue
            etag = client.storage.head(client.bucket, key)
            job = client.job_of(Submitted(key, etag.etag)) if etag else None
            if job:
                found[key] = parse_time(client.status(GROUP, job).created).timestamp()
        time.sleep(0.2)
    return found


def requests_per_admission(
    counted: Counted, settings: Settings, record: AnalysisRecord, data_key: str, engine: Engine
) -> dict[str, float]:
    """Admit one submission and run its dataset in this process, counting S3 requests."""
    from ncaas_dev.dispatch.scheduler import Scheduler
    from ncaas_dev.launchers.docker import DockerLauncher

    bucket = record.blueprint.analysis
    key, _ = write_submission(counted.storage, bucket, data_key, "count")
    counted.take()
    admitted = Admission(counted.storage, "docker", "bench:1").admit(
        ObjectCreated(bucket, key, None, None)
    )
    per_admission = counted.take()
    assert admitted.status is not None, admitted.outcome
    # As the dispatcher admits an SQS batch: ten at once, sharing the record's read and the
    # ledger's writes.
    batch = [write_submission(counted.storage, bucket, data_key, "batch")[0] for _ in range(10)]
    counted.take()
    admission, received = Admission(counted.storage, "docker", "bench:1"), time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda k: admission.admit(ObjectCreated(bucket, k, None, None), received), batch
            )
        )
    per_admission_in_batch = counted.take() / 10
    launcher = DockerLauncher(settings.state_dir / "counting", settings.endpoint_url)
    scheduler = Scheduler(counted.storage, launcher, settings.endpoint_url, settings.region, "b:1")
    launcher.launch = lambda task: "docker:counting"  # type: ignore[method-assign]
    scheduler.queue_waiting(bucket, record, admitted.status)
    (task,) = list(scheduler.pending)
    scheduler.launch_ready()
    per_launch = counted.take()
    # A runner is a process of its own: cold caches (its status.json and ledger versions).
    jobstore._last_seen = LastSeen()
    budget._last_seen = LastSeen(64)
    Runner(counted.storage, engine, settings).run(task, "docker:counting")
    per_run = counted.take()
    return {
        "admission": per_admission,
        "admission_in_a_batch_of_10": per_admission_in_batch,
        "launch": per_launch,
        "runner": per_run,
    }


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--soak", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ncaas-admission-"))
    settings = Settings(endpoint_url=f"http://127.0.0.1:{free_port()}", state_dir=work / "state")
    loaded = noop_blueprint(
        work, "ncaas-admission-noop", limits={"max_concurrent_jobs": 4, "max_cost_usd": 100000}
    )
    bucket = loaded.blueprint.analysis
    engine = Engine(connect())
    say = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr))
    report: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": f"{os.cpu_count()} cores, {platform.platform()}",
    }
    try:
        say(f"LocalStack at {settings.endpoint_url}")
        start_localstack(settings)
        counted = Counted(settings)
        storage = counted.storage
        record = AnalysisRecord.of(loaded, engine.build(loaded))
        sqs = sqs_client(settings)
        provision(storage, sqs, settings, record)
        data_key = f"{GROUP}/inputs/one.bin"
        storage.put_bytes(bucket, data_key, b"x" * 1024)
        report["localstack_ceiling"] = ceiling(storage, bucket)
        say("ceiling", report["localstack_ceiling"])
        report["s3_requests"] = requests_per_admission(counted, settings, record, data_key, engine)
        say("requests", report["s3_requests"])
        sqs.purge_queue(QueueUrl=sqs.get_queue_url(QueueName=QUEUE_NAME)["QueueUrl"])
        pid = start_dispatcher(settings, "docker").pid
        assert pid is not None
        # Sampling profiles (py-spy, raw stacks) of the dispatcher and of LocalStack itself,
        # over the burst.
        localstack_pid = PidFile(settings.state_dir, "localstack").read().pid
        for variable, profiled in (
            ("NCAAS_BENCH_PROFILE", pid),
            ("NCAAS_BENCH_PROFILE_LOCALSTACK", localstack_pid),
        ):
            if os.environ.get(variable) and profiled:
                subprocess.Popen(
                    [
                        shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"),
                        "record",
                        *("-p", str(profiled), "-d", "25", "-f", "raw", "-o", os.environ[variable]),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
        time.sleep(2)  # its start-up sweep
        client = AnalysisClient(storage, bucket)

        with ThreadPoolExecutor(16) as pool:  # burst: all at once
            first = time.time()
            sent = dict(
                pool.map(
                    lambda i: write_submission(storage, bucket, data_key, "burst"),
                    range(args.burst),
                )
            )
        made = created_at(client, sent, timeout=300)
        span = max(made.values()) - first if made else float("nan")
        report["burst"] = {
            "submissions": args.burst,
            "job_folders": len(made),
            "seconds_first_write_to_last_folder": round(span, 3),
            "submissions_per_s": round(len(made) / span, 1) if made else 0.0,
        }
        say("burst", report["burst"])

        steady: dict[str, float] = {}
        interval = 1 / args.rate
        start = time.monotonic()
        for i in range(int(args.rate * args.seconds)):
            time.sleep(max(0.0, start + i * interval - time.monotonic()))
            key, written = write_submission(storage, bucket, data_key, "steady")
            steady[key] = written
        made = created_at(client, steady, timeout=300)
        report["steady"] = {
            "rate_per_s": args.rate,
            "submissions": len(steady),
            "job_folders": len(made),
            "admission_latency_s": percentiles([made[k] - steady[k] for k in made]),
        }
        say("steady", report["steady"])

        rss = {"start": rss_kib(pid)}
        missing = f"{GROUP}/inputs/missing-{secrets.token_hex(4)}.bin"
        soaked: dict[str, float] = {}
        for i in range(args.soak):
            key, written = write_submission(storage, bucket, missing, "soak")
            soaked[key] = written
            if i + 1 in (200, 1000) or i + 1 == args.soak:
                created_at(client, {key: written}, timeout=120)  # it has caught up
                rss[f"after_{i + 1}"] = rss_kib(pid)
        after_200 = rss.get("after_200", rss["start"])
        report["memory_rss_kib"] = rss
        report["memory_growth_after_200_pct"] = round(
            100 * (rss.get(f"after_{args.soak}", after_200) - after_200) / after_200, 1
        )
        say("memory", rss, report["memory_growth_after_200_pct"], "%")
    finally:
        stop_stack(settings, engine, bucket)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
