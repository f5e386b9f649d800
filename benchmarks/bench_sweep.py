"""The sweep with many finished jobs: the indexes (open jobs, submission pointers) against
reading every job folder and every claim.

On a LocalStack of its own (free loopback port, own state folder): one analysis, one group,
``--finished`` finished jobs, each with its submission and its claim as admission leaves them
(status.json, submission and claim written directly, as a full bucket holds them), and
``--open`` open ones (made by ``JobStore.create``, which indexes them). Then, each from a fresh
``Sweeper`` (a cold Lambda), counting every S3 request its client sends:

- before: the bucket as older dispatchers left it: no index record (so the sweep lists
  ``results/`` and reads every job's status, then writes the index) and no pointers beside the
  submissions (so the sweep reads every submission's claim);
- full listing: the same bucket with the index and a pointer beside each submission, every
  submission listed (what a starting dispatcher does, and a sweep every 10 minutes);
- after: the same, as a cold Lambda's sweep runs it, ``--rounds`` times: the listing starts at
  the sweep record's mark.

Reports seconds and S3 requests per sweep. Everything stays on loopback.

    .venv/bin/python benchmarks/bench_sweep.py [--finished 10000] [--open 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from counting import Counted  # noqa: E402
from load import free_port  # noqa: E402

from ncaas_dev.analysis import AnalysisRecord, save_record  # noqa: E402
from ncaas_dev.blueprint import parse_blueprint  # noqa: E402
from ncaas_dev.dispatch.sweep import Sweeper  # noqa: E402
from ncaas_dev.jobstore import JobStore  # noqa: E402
from ncaas_dev.layout import (  # noqa: E402
    OPEN_INDEX_RECORD,
    SWEEP_RECORD,
    JobPaths,
    claim_key,
    pointer_doc,
    submission_pointer_key,
)
from ncaas_dev.local.stack import PidFile, start_localstack  # noqa: E402
from ncaas_dev.settings import Settings  # noqa: E402
from ncaas_dev.status import DatasetStatus, JobStatus, State  # noqa: E402

BUCKET = "bench-sweep"
GROUP = "bench"


def status(job: str, state: State) -> JobStatus:
    ds = DatasetStatus(key=f"{GROUP}/inputs/d.bin", state=state)
    return JobStatus(
        job=job,
        analysis=BUCKET,
        group=GROUP,
        submission=submission_key(job),
        state=state,
        datasets={"d": ds},
    )


def submission_key(job: str) -> str:
    return f"{GROUP}/submissions/{job}_submit.json"


def one_sweep(counted: Counted, full_listing: bool = False) -> dict[str, Any]:
    waiting: list[str] = []

    def queue(bucket: str, record: AnalysisRecord, st: JobStatus) -> int:
        waiting.append(st.job)
        return 0

    sweeper = Sweeper(counted.storage, lambda e: None, queue)  # type: ignore[arg-type,return-value]
    counted.take()
    start = time.perf_counter()
    sweeper.sweep(full_listing)
    seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 3), "s3_requests": counted.take(), "open": len(waiting)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--finished", type=int, default=10_000)
    parser.add_argument("--open", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ncaas-bench-sweep-"))
    settings = Settings(endpoint_url=f"http://127.0.0.1:{free_port()}", state_dir=work / "state")
    report: dict[str, Any] = {"finished": args.finished, "open": args.open}
    try:
        start_localstack(settings)
        counted = Counted(settings)
        storage = counted.storage
        storage.s3.create_bucket(Bucket=BUCKET)
        doc = {"analysis": BUCKET, "groups": [{"name": GROUP, "users": []}]}
        record = AnalysisRecord(
            blueprint=parse_blueprint(doc, "bench"), content_hash="0" * 64, image="x"
        )
        save_record(storage, record)

        etags: dict[str, str] = {}

        def write(i: int) -> None:
            job = f"job_done{i:05}"
            doc = status(job, State.SUCCEEDED).model_dump(mode="json")
            storage.put_json(BUCKET, JobPaths(GROUP, job).status, doc)
            key = submission_key(job)
            etag = storage.put_json(BUCKET, key, {"dataname": f"{GROUP}/inputs/d.bin"})
            etags[job] = etag
            claim = {"submission": key, "etag": etag, "job": job, "owner": "bench:1"}
            storage.put_json(BUCKET, claim_key(key, etag), claim)

        def point(job: str) -> None:
            key = submission_key(job)
            storage.put_json(BUCKET, submission_pointer_key(key), pointer_doc(key, etags[job], job))

        start = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(write, range(args.finished)))
        report["setup_seconds"] = round(time.perf_counter() - start, 1)
        store = JobStore(storage, BUCKET)
        for i in range(args.open):
            job = f"job_open{i:03}"
            store.create(status(job, State.QUEUED))
            key = submission_key(job)
            etags[job] = storage.put_json(BUCKET, key, {"dataname": f"{GROUP}/inputs/d.bin"})
            point(job)

        storage.delete(BUCKET, OPEN_INDEX_RECORD)
        report["before_no_indexes"] = one_sweep(counted)
        print("before", report["before_no_indexes"], file=sys.stderr)
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(point, [f"job_done{i:05}" for i in range(args.finished)]))
        storage.delete(BUCKET, SWEEP_RECORD)
        report["full_listing"] = one_sweep(counted, full_listing=True)
        print("full listing", report["full_listing"], file=sys.stderr)
        report["after_indexes"] = [one_sweep(counted) for _ in range(args.rounds)]
        print("after", report["after_indexes"], file=sys.stderr)
        worst = max(report["after_indexes"], key=lambda r: r["seconds"])
        report["goal"] = "cold sweep <= 50 requests and <= 1 s"
        report["met"] = worst["s3_requests"] <= 50 and worst["seconds"] <= 1.0
    finally:
        PidFile(settings.state_dir, "localstack").stop()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
