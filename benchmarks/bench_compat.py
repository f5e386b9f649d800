"""What `compat: neurocaas` costs: S3 requests per one-dataset job, default layout vs
NeuroCAAS's, and the time from submission to end.txt.

On a LocalStack of its own (free loopback port, own state folder) with the no-op analysis
(``benchmarks/noop``), both layouts provisioned from the same image. Requests are counted on
the client of the admission, the launch and the runner (as ``bench_admission.py`` counts
them). Then ``--jobs`` submissions per layout go through the real dispatcher; the end-to-end
times (submission written -> end.txt present, polled every 0.1 s) are reported as percentiles.

    .venv/bin/python benchmarks/bench_compat.py [--jobs 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_admission import requests_per_admission  # noqa: E402
from counting import Counted  # noqa: E402
from load import free_port, noop_blueprint, percentiles, stop_stack  # noqa: E402

from ncaas_dev.analysis import AnalysisRecord  # noqa: E402
from ncaas_dev.aws import sqs_client  # noqa: E402
from ncaas_dev.containers import Engine, connect  # noqa: E402
from ncaas_dev.local.provision import QUEUE_NAME, provision  # noqa: E402
from ncaas_dev.local.stack import start_dispatcher, start_localstack  # noqa: E402
from ncaas_dev.settings import Settings  # noqa: E402
from ncaas_dev.storage import Storage  # noqa: E402

GROUP = "bench"


def end_to_end(storage: Storage, bucket: str, compat: bool, data_key: str, jobs: int) -> Any:
    """Seconds from writing each submission (one at a time) to its end.txt."""
    times = []
    for _ in range(jobs):
        stamp = f"b{secrets.token_hex(4)}"
        doc = {"dataname": data_key, "timestamp": stamp}
        key = f"{GROUP}/submissions/{stamp}_submit.json"
        job = f"job__{bucket}_{stamp}" if compat else f"job_{stamp}"
        end = f"{GROUP}/results/{job}/process_results/end.txt"
        started = time.monotonic()
        storage.put_bytes(bucket, key, json.dumps(doc).encode())
        while storage.head(bucket, end) is None:
            if time.monotonic() - started > 120:
                raise SystemExit(f"{job}: no end.txt within 120 s")
            time.sleep(0.1)
        times.append(time.monotonic() - started)
    return percentiles(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ncaas-compat-"))
    settings = Settings(endpoint_url=f"http://127.0.0.1:{free_port()}", state_dir=work / "state")
    loaded = noop_blueprint(work, "ncaas-compat-noop", groups=[{"name": GROUP}])
    engine = Engine(connect())
    say = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr))
    report: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": f"{os.cpu_count()} cores, {platform.platform()}",
    }
    buckets = []
    try:
        start_localstack(settings)
        counted = Counted(settings)
        image_id = engine.build(loaded)
        sqs = sqs_client(settings)
        records = {}
        for layout in ("none", "neurocaas"):
            bp = loaded.blueprint.model_copy(
                update={"analysis": f"ncaas-compat-{layout}", "compat": layout}
            )
            records[layout] = AnalysisRecord(
                blueprint=bp, content_hash=loaded.content_hash, image=loaded.blueprint.image_tag,
                image_id=image_id,
            )  # fmt: skip
            provision(counted.storage, sqs, settings, records[layout])
            buckets.append(bp.analysis)
            counted.storage.put_bytes(bp.analysis, f"{GROUP}/inputs/one.bin", b"x" * 1024)
        for layout, record in records.items():
            key = f"{GROUP}/inputs/one.bin"
            report[f"s3_requests_{layout}"] = requests_per_admission(
                counted, settings, record, key, engine
            )
            say(layout, report[f"s3_requests_{layout}"])
        sqs.purge_queue(QueueUrl=sqs.get_queue_url(QueueName=QUEUE_NAME)["QueueUrl"])
        start_dispatcher(settings, "docker")
        time.sleep(2)  # its start-up sweep
        for layout, record in records.items():
            report[f"end_to_end_s_{layout}"] = end_to_end(
                counted.storage, record.blueprint.analysis, layout == "neurocaas",
                f"{GROUP}/inputs/one.bin", args.jobs,
            )  # fmt: skip
            say(layout, report[f"end_to_end_s_{layout}"])
    finally:
        for bucket in buckets:
            stop_stack(settings, engine, bucket)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
