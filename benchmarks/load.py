"""Load: a few hundred submissions at once through the real dispatcher, Docker and LocalStack.

Starts a LocalStack of its own on a free loopback port (a developer's stack is never touched),
builds the no-op analysis (``benchmarks/noop``: ``true`` in the base image) under its own name
with the chosen concurrency cap, starts a dispatcher, writes ``--count`` submissions as fast
as S3 takes them, and waits (at most ``--timeout`` seconds) until every job has ended.
Reports dispatch throughput (submissions accepted into job folders per second) and latency
percentiles from the submission being written to: the job folder accepted (the dispatcher's
"accepted" log stamp, written with status.json), the dataset running (the runner's own
``started``), and the job's end (``finished``, written with end.txt). All stamps come from
one clock, this machine's. Checks that every submission ended exactly once.

    .venv/bin/python benchmarks/load.py [--count 300] [--cap 4] [--timeout 900] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import socket
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from ncaas_dev.client import AnalysisClient, Submitted  # noqa: E402
from ncaas_dev.pricing import parse_time  # noqa: E402
from ncaas_dev.status import JobStatus  # noqa: E402
from ncaas_dev.storage import Storage  # noqa: E402


@dataclass
class Sent:
    submitted: Submitted
    written: float  # epoch seconds, after S3 acknowledged the write


@dataclass
class LoadResult:
    count: int
    ended: int
    seconds_to_write: float
    seconds_to_accept_all: float
    seconds_to_end_all: float
    throughput_accepted_per_s: float
    throughput_ended_per_s: float
    latency_s: dict[str, dict[str, float]]
    jobs_per_submission: dict[str, int]
    runs_per_dataset: dict[str, int]
    states: dict[str, int]
    problems: list[str] = field(default_factory=list)


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": round(ordered[-1], 3)}


def submit_all(storage: Storage, bucket: str, group: str, data_key: str, count: int) -> list[Sent]:
    sent: list[Sent] = []
    for _ in range(count):
        body = json.dumps({"dataname": data_key}).encode()
        key = f"{group}/submissions/load-{secrets.token_hex(6)}_submit.json"
        etag = storage.put_bytes(bucket, key, body)
        sent.append(Sent(Submitted(key, etag), time.time()))
    return sent


def wait_all(
    storage: Storage, bucket: str, group: str, sent: list[Sent], timeout: float
) -> dict[str, str]:
    """Job of each submission once its end.txt exists; stops at ``timeout`` seconds."""
    client = AnalysisClient(storage, bucket)
    jobs: dict[str, str] = {}
    ended: set[str] = set()
    deadline = time.monotonic() + timeout
    while len(ended) < len(sent) and time.monotonic() < deadline:
        for s in sent:
            key = s.submitted.key
            if key not in jobs:
                job = client.job_of(s.submitted)
                if job:
                    jobs[key] = job
            if key in jobs and key not in ended and client.finished(group, jobs[key]):
                ended.add(key)
        if len(ended) < len(sent):
            time.sleep(0.5)
    return {k: v for k, v in jobs.items() if k in ended}


def accepted_at(status: JobStatus) -> float:
    for event in status.events:
        if event.message.startswith(("accepted", "rejected")):
            return parse_time(event.time).timestamp()
    return parse_time(status.created).timestamp()


def measure(
    storage: Storage, bucket: str, group: str, sent: list[Sent], ended_jobs: dict[str, str]
) -> LoadResult:
    client = AnalysisClient(storage, bucket)
    statuses = {key: client.status(group, job) for key, job in ended_jobs.items()}
    first_written = min(s.written for s in sent)
    to_folder, to_running, to_end = [], [], []
    accepted, finished = [], []
    runs: dict[str, int] = {}
    for s in sent:
        status = statuses.get(s.submitted.key)
        if status is None:
            continue
        accepted.append(accepted_at(status))
        to_folder.append(accepted[-1] - s.written)
        for name, ds in status.datasets.items():
            if ds.started:
                to_running.append(parse_time(ds.started).timestamp() - s.written)
            runs[f"{status.job}/{name}"] = sum(
                1 for e in status.events if e.message.startswith(f"{name}: analysis started on")
            )
        if status.finished:
            finished.append(parse_time(status.finished).timestamp())
            to_end.append(finished[-1] - s.written)
    # Every job folder of the group, by submission: none may have two.
    per_submission = Counter(j.submission for j in client.jobs(group))
    problems = [f"{k}: no job ended" for k in (s.submitted.key for s in sent) if k not in statuses]
    problems += [f"{k}: {n} jobs" for k, n in per_submission.items() if n != 1]
    problems += [f"{k}: ran {n} times" for k, n in runs.items() if n != 1]
    accept_span = (max(accepted) - first_written) if accepted else float("nan")
    end_span = (max(finished) - first_written) if finished else float("nan")
    return LoadResult(
        count=len(sent),
        ended=len(statuses),
        seconds_to_write=round(max(s.written for s in sent) - first_written, 3),
        seconds_to_accept_all=round(accept_span, 3),
        seconds_to_end_all=round(end_span, 3),
        throughput_accepted_per_s=round(len(accepted) / accept_span, 2) if accepted else 0.0,
        throughput_ended_per_s=round(len(finished) / end_span, 2) if finished else 0.0,
        latency_s={
            "written_to_job_folder": percentiles(to_folder),
            "written_to_running": percentiles(to_running),
            "written_to_end": percentiles(to_end),
        },
        jobs_per_submission=dict(Counter(per_submission.values())),
        runs_per_dataset=dict(Counter(runs.values())),
        states=dict(Counter(s.state.value for s in statuses.values())),
        problems=problems,
    )


def run_load(storage: Storage, bucket: str, group: str, count: int, timeout: float) -> LoadResult:
    """Submit ``count`` one-dataset submissions and measure them (the stack must be up)."""
    data_key = f"{group}/inputs/load-{secrets.token_hex(4)}.bin"
    storage.put_bytes(bucket, data_key, b"x" * 1024)
    sent = submit_all(storage, bucket, group, data_key, count)
    ended = wait_all(storage, bucket, group, sent, timeout)
    return measure(storage, bucket, group, sent, ended)


def stop_stack(settings: Any, engine: Any, analysis: str) -> None:
    """Stop a benchmark's own stack and remove the containers its analysis left."""
    from ncaas_dev.local.stack import STACK_PROCESSES, PidFile

    for name in STACK_PROCESSES:
        PidFile(settings.state_dir, name).stop()
    for container in engine.client.containers.list(
        all=True, filters={"label": f"ncaas.analysis={analysis}"}
    ):
        container.remove(force=True)


def noop_blueprint(work: Path, analysis: str, **changes: object) -> Any:
    """The no-op analysis copied into ``work/noop`` as ``analysis``, with ``changes`` (top-level
    blueprint sections) applied; returns it loaded (a ``LoadedBlueprint``)."""
    import yaml

    from ncaas_dev.blueprint import load_blueprint

    folder = work / "noop"
    shutil.copytree(HERE / "noop", folder)
    doc = yaml.safe_load((folder / "blueprint.yaml").read_text())
    doc.update(analysis=analysis, **changes)
    (folder / "blueprint.yaml").write_text(yaml.safe_dump(doc))
    return load_blueprint(folder)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=300, help="submissions (at most 2000)")
    parser.add_argument("--cap", type=int, default=4, help="limits.max_concurrent_jobs")
    parser.add_argument("--timeout", type=float, default=900, help="give up after (s)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the state folder (logs)")
    args = parser.parse_args()
    count = max(1, min(args.count, 2000))

    from ncaas_dev.analysis import AnalysisRecord
    from ncaas_dev.aws import s3_client, sqs_client
    from ncaas_dev.containers import Engine, connect
    from ncaas_dev.local.provision import provision
    from ncaas_dev.local.stack import start_dispatcher, start_localstack
    from ncaas_dev.settings import Settings

    work = Path(tempfile.mkdtemp(prefix="ncaas-load-"))
    settings = Settings(endpoint_url=f"http://127.0.0.1:{free_port()}", state_dir=work / "state")
    loaded = noop_blueprint(
        work, "ncaas-load-noop", limits={"max_concurrent_jobs": args.cap, "max_cost_usd": 1000}
    )
    engine = Engine(connect())
    log = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr))
    try:
        log(f"starting LocalStack at {settings.endpoint_url} (state in {work})")
        start_localstack(settings)
        storage = Storage(s3_client(settings), settings.endpoint_url)
        record = AnalysisRecord.of(loaded, engine.build(loaded))
        provision(storage, sqs_client(settings), settings, record)
        start_dispatcher(settings, "docker")
        log(f"submitting {count} submissions (cap {args.cap})")
        result = run_load(storage, loaded.blueprint.analysis, "bench", count, args.timeout)
    finally:
        stop_stack(settings, engine, loaded.blueprint.analysis)
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    report: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": f"{platform.node()}: {os.cpu_count()} cores, {platform.platform()}",
        "settings": {"count": count, "cap": args.cap, "analysis": "benchmarks/noop (true)"},
        **asdict(result),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name, value in report.items():
            print(f"{name}: {value}")
    return 0 if not result.problems and result.ended == count else 1


if __name__ == "__main__":
    sys.exit(main())
