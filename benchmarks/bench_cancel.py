"""Benchmark for docs/benchmarks.md: cancel latency per launcher (docker, slurm, ec2).

For each launcher, --repeat times: one dataset whose analysis sleeps, waited for until its
analysis container runs; then a cancel file is written into S3 (as a user would) and the
clock runs until (1) the analysis container is gone, (2) status.json says the dataset is
cancelled, (3) end.txt exists. Medians and every run are printed as JSON.

The issue's target is <= 2 s from the cancel file to the container gone on the docker
launcher (10 s is the failure bound the tests assert). Needs the local SLURM cluster
(`make slurm`) for the slurm launcher. Runs a stack of its own (LocalStack on a free loopback
port, its own state folder), so nothing else on the machine is touched.

    .venv/bin/python benchmarks/bench_cancel.py [--repeat 5] [--launchers docker,slurm,ec2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
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

from load import free_port  # noqa: E402

from ncaas_dev.aws import ec2_client, s3_client  # noqa: E402
from ncaas_dev.client import AnalysisClient  # noqa: E402
from ncaas_dev.cloud.layout import TAG_IMAGE_ID  # noqa: E402
from ncaas_dev.containers import connect  # noqa: E402
from ncaas_dev.settings import Settings  # noqa: E402
from ncaas_dev.status import State  # noqa: E402
from ncaas_dev.storage import Storage  # noqa: E402

GROUP = "labA"
POLL_S = 0.02


def ncaas(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([NCAAS, *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"ncaas-dev {' '.join(args)} failed: {done.stderr[-1500:]}")
    return done.stdout


def blueprint(folder: Path, analysis: str) -> Path:
    shutil.copytree(ROOT / "tests" / "fixtures" / "probe", folder)
    doc = yaml.safe_load((folder / "blueprint.yaml").read_text())
    doc.update(analysis=analysis)
    doc["run"]["timeout"] = 600
    (folder / "blueprint.yaml").write_text(yaml.safe_dump(doc))
    return folder


def use_an_ami(settings: Settings, folder: Path, engine: Any) -> None:
    """Register an AMI in LocalStack's EC2 carrying the built image's id; the blueprint's
    cloud.ami names it (what `ncaas-dev bake` does, without Packer)."""
    doc = yaml.safe_load((folder / "blueprint.yaml").read_text())
    image = engine.images.get(f"ncaas/{doc['analysis']}:latest")
    ec2 = ec2_client(settings)
    ami = ec2.register_image(
        Name=f"bench-cancel-{secrets.token_hex(4)}",
        RootDeviceName="/dev/sda1",
        BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 8}}],
    )["ImageId"]
    ec2.create_tags(Resources=[ami], Tags=[{"Key": TAG_IMAGE_ID, "Value": image.id}])
    doc.setdefault("cloud", {})["ami"] = ami
    (folder / "blueprint.yaml").write_text(yaml.safe_dump(doc))


def analysis_running(engine: Any, job: str) -> bool:
    return bool(engine.containers.list(filters={"label": f"ncaas.job={job}"}))


def one_cancel(client: AnalysisClient, engine: Any, data: str, config: str) -> dict[str, float]:
    job = ""
    submitted = client.submit(GROUP, [data], config)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        job = job or client.job_of(submitted) or ""
        if job and analysis_running(engine, job):
            break
        time.sleep(0.1)
    else:
        raise SystemExit(f"{job or submitted.key}: the analysis never started")
    started = time.perf_counter()
    client.cancel(GROUP, job, by="bench")
    marks: dict[str, float] = {}
    while len(marks) < 3 and time.perf_counter() - started < 120:
        now = time.perf_counter() - started
        if "container_gone_s" not in marks and not analysis_running(engine, job):
            marks["container_gone_s"] = now
        if "status_cancelled_s" not in marks:
            status = client.status(GROUP, job)
            if all(d.state == State.CANCELLED for d in status.datasets.values()):
                marks["status_cancelled_s"] = now
        if "end_txt_s" not in marks and client.finished(GROUP, job):
            marks["end_txt_s"] = now
        time.sleep(POLL_S)
    if len(marks) < 3:
        raise SystemExit(f"{job}: not cancelled within 120 s ({marks})")
    return {k: round(v, 2) for k, v in marks.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--launchers", default="docker,slurm,ec2")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-cancel-"))
    settings = Settings(endpoint_url=f"http://127.0.0.1:{free_port()}", state_dir=work / "state")
    assert settings.endpoint_url
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": settings.endpoint_url,
        "NCAAS_STATE_DIR": str(settings.state_dir),
    }
    analysis = f"bench-cancel-{secrets.token_hex(3)}"
    folder = blueprint(work / "bp", analysis)
    engine = connect()
    report: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": f"{platform.node()}: {os.cpu_count()} cores, {platform.platform()}",
        "load_average_at_start": [round(x, 1) for x in os.getloadavg()],
    }
    try:
        ncaas(env, "up", str(folder))
        storage = Storage(s3_client(settings), settings.endpoint_url)
        client = AnalysisClient(storage, analysis)
        data = f"{GROUP}/inputs/rec.bin"
        storage.put_bytes(analysis, data, os.urandom(1000))
        config = f"{GROUP}/configs/sleep.json"
        storage.put_json(analysis, config, {"lines": 1, "sleep": 300})
        for launcher in args.launchers.split(","):
            if launcher == "ec2":
                use_an_ami(settings, folder, engine)
            ncaas(env, "up", str(folder), "--launcher", launcher)
            runs = [one_cancel(client, engine, data, config) for _ in range(args.repeat)]
            report[launcher] = {
                "median": {k: round(statistics.median(r[k] for r in runs), 2) for k in runs[0]},
                "runs": runs,
            }
        report["load_average_at_end"] = [round(x, 1) for x in os.getloadavg()]
    finally:
        subprocess.run([NCAAS, "down"], env=env, capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
