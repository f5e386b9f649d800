"""Host runtime or containers: which local stack `make demo` should start (issue 15).

For each kind of stack, on a free loopback port and a state folder of the benchmark's own
(a developer's stack is never touched):
- set-up on a fresh machine (the parts that differ; both need ncaas/base and pip's downloads):
  host: `localstack/setup.sh` into a new venv; containers: both wheelhouses filled and both
  images built with `--no-cache` (throwaway tags);
- start: `ncaas-dev up PROBE` / `ncaas-dev up --containers PROBE`, everything installed;
- run overhead: a probe dataset (one line, exit 0) written into S3 until end.txt, median of N;
- memory: resident set (VmRSS) summed over the stack's processes (host: LocalStack's and the
  dispatcher's sessions; containers: every process of both containers), once idle after the runs.

    .venv/bin/python benchmarks/bench_stacks.py [--runs 7] [--skip-setup]

The last line printed is the JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from integration.jobs import Lab, copy_blueprint  # noqa: E402

from ncaas_dev.aws import s3_client  # noqa: E402
from ncaas_dev.blueprint import load_blueprint  # noqa: E402
from ncaas_dev.local import compose  # noqa: E402
from ncaas_dev.local import images as stack_images  # noqa: E402
from ncaas_dev.local.stack import STACK_PROCESSES, PidFile  # noqa: E402
from ncaas_dev.settings import Settings  # noqa: E402
from ncaas_dev.storage import Storage  # noqa: E402

NCAAS = Path(sys.executable).parent / "ncaas-dev"
PROBE = ROOT / "tests" / "fixtures" / "probe"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr[-800:]}")
    return time.perf_counter() - started


def setup_host() -> float:
    with tempfile.TemporaryDirectory() as venv:
        env = {**os.environ, "NCAAS_LOCALSTACK_VENV": str(Path(venv) / "venv")}
        return timed([str(ROOT / "localstack" / "setup.sh")], env)


def setup_containers() -> float:
    started = time.perf_counter()
    for image in stack_images.STACK_IMAGES:
        context = stack_images.fill_wheelhouse(image, say=lambda line: None)
        tag = f"{image.repository}:bench-cold"
        build = ["docker", "build", "--no-cache", "--network", "none", "-q", "-t", tag]
        timed([*build, "-f", str(image.dockerfile), str(context)])
        subprocess.run(["docker", "rmi", tag], capture_output=True, check=False)
    return time.perf_counter() - started


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def host_pids(state: Path) -> list[int]:
    """Every process in the sessions of the stack's daemons."""
    leaders = {info.pid for n in STACK_PROCESSES if (info := PidFile(state, n).read()).pid}
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) in leaders:  # the session id
                found.append(int(entry.name))
    return found


def container_pids(project: str) -> list[int]:
    found = compose.project_containers(project) or []
    pids = []
    for container in found:
        top = subprocess.run(
            ["docker", "top", container["Id"], "-eo", "pid"], capture_output=True, text=True
        )
        pids += [int(p) for p in top.stdout.split()[1:] if p.isdigit()]
    return pids


def measure(kind: str, runs: int, work: Path) -> dict[str, Any]:
    state = work / f"state-{kind}"
    settings = Settings(endpoint_url=f"http://127.0.0.1:{free_port()}", state_dir=state)
    env = {
        **os.environ,
        "NCAAS_STATE_DIR": str(state),
        "AWS_ENDPOINT_URL": str(settings.endpoint_url),
    }
    probe = copy_blueprint(PROBE, work / f"probe-{kind}", "ncaas-bench")
    up = [str(NCAAS), "up", str(probe), *(["--containers"] if kind == "containers" else [])]
    result: dict[str, Any] = {}
    try:
        result["up_s"] = round(timed(up, env), 2)
        lab = Lab(
            Storage(s3_client(settings), settings.endpoint_url),
            load_blueprint(probe).blueprint.analysis,
        )
        latencies = []
        for _ in range(runs):
            started = time.perf_counter()
            status = lab.run(dataname=lab.dataset(), configname=lab.config(lines=1))
            assert status.state.value == "succeeded", status.reason
            latencies.append(time.perf_counter() - started)
        result["run_s_median"] = round(statistics.median(latencies), 2)
        result["run_s_first"] = round(latencies[0], 2)
        time.sleep(3)  # idle: fork server started, runners gone
        if kind == "host":
            result["rss_mib"] = round(rss_kib(host_pids(state)) / 1024)
        else:
            record = compose.read_record(state)
            assert record is not None
            result["rss_mib"] = round(rss_kib(container_pids(record.project)) / 1024)
    finally:
        timed([str(NCAAS), "down"], env)
    return result


def image_sizes() -> dict[str, str]:
    sizes = {}
    for image in (*stack_images.STACK_IMAGES,):
        tag = f"{image.repository}:current"
        out = subprocess.run(
            ["docker", "image", "inspect", "--format", "{{.Size}}", tag],
            capture_output=True,
            text=True,
        )
        base = subprocess.run(
            ["docker", "image", "inspect", "--format", "{{.Size}}", stack_images.BASE_IMAGE],
            capture_output=True,
            text=True,
        )
        if out.returncode == 0:
            sizes[tag] = f"+{(int(out.stdout) - int(base.stdout)) // 2**20} MiB over the base"
    return sizes


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--skip-setup", action="store_true")
    args = parser.parse_args()
    doc: dict[str, Any] = {"cpus": os.cpu_count(), "load": os.getloadavg()[0]}
    stack_images.ensure_stack_images(say=lambda line: None)
    if not args.skip_setup:
        doc["setup_s"] = {
            "host": round(setup_host(), 1),
            "containers": round(setup_containers(), 1),
        }
        print(f"set-up: {doc['setup_s']}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="ncaas-bench-stacks-"))
    try:
        for kind in ("host", "containers"):
            doc[kind] = measure(kind, args.runs, work)
            print(f"{kind}: {doc[kind]}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    doc["images"] = image_sizes()
    print(json.dumps(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
