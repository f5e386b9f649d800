"""Start-up of the command line: `ncaas-dev --help` and `ncaas-dev status` (issue 10's targets:
0.15 s and 0.3 s), median of N runs each, wall and CPU (user + system) seconds.

`status` is measured twice: with no stack (nothing answers, no pid files) and with a running
one (a LocalStack of the benchmark's own, on a free loopback port, with one analysis
provisioned and a dispatcher running), so a developer's stack is never touched. The commands
run round-robin, so a burst of load on a shared machine spreads over all of them.

    .venv/bin/python benchmarks/bench_startup.py [--repeat 21] [--ncaas PATH ...] [--json-only]

``--ncaas`` (repeatable) times other installations' `ncaas-dev` (e.g. a checkout of the commit
before) in the same rounds, against the same stack. The last line printed is the JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PROBE = ROOT / "tests" / "fixtures" / "probe"
TARGETS = {"--help": 0.15, "status (no stack)": 0.3, "status (running stack)": 0.3}


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one child process; it must succeed."""
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        stderr = child.stderr.read().decode() if child.stderr else ""
        raise SystemExit(f"{' '.join(command)} failed: {stderr[-500:]}")
    if child.stderr:
        child.stderr.close()
    return wall, usage.ru_utime + usage.ru_stime


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_stack(state: Path) -> str:
    """A LocalStack of our own with the probe analysis provisioned and a dispatcher running."""
    sys.path.insert(0, str(ROOT))
    from ncaas_dev.analysis import AnalysisRecord
    from ncaas_dev.aws import s3_client, sqs_client
    from ncaas_dev.blueprint import load_blueprint
    from ncaas_dev.local.provision import provision
    from ncaas_dev.local.stack import start_dispatcher, start_localstack
    from ncaas_dev.settings import Settings
    from ncaas_dev.storage import Storage

    settings = Settings(endpoint_url=f"http://127.0.0.1:{_free_port()}", state_dir=state)
    start_localstack(settings)
    storage = Storage(s3_client(settings), settings.endpoint_url)
    # The record is what `status` looks for; no image is needed to write it.
    record = AnalysisRecord.of(load_blueprint(PROBE), None)
    provision(storage, sqs_client(settings), settings, record)
    start_dispatcher(settings, "docker")
    assert settings.endpoint_url is not None
    return settings.endpoint_url


def stop_stack(state: Path) -> None:
    from ncaas_dev.local.stack import PidFile

    for name in ("dispatcher", "localstack"):
        PidFile(state, name).stop()


def measure(
    installs: list[str], repeat: int, work: Path, endpoint: str
) -> dict[str, dict[str, dict[str, float]]]:
    """Per installation, per command: median and minimum wall seconds, median CPU seconds."""
    base = {k: v for k, v in os.environ.items() if k not in ("AWS_ENDPOINT_URL", "COLUMNS")}
    idle = {**base, "NCAAS_STATE_DIR": str(work / "none"), "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    running = {**base, "NCAAS_STATE_DIR": str(work / "state"), "AWS_ENDPOINT_URL": endpoint}
    cases: dict[tuple[str, str], tuple[list[str], dict[str, str]]] = {
        ("python", "python -c pass (floor)"): ([sys.executable, "-c", "pass"], idle)
    }
    for ncaas in installs:
        cases[ncaas, "--help"] = ([ncaas, "--help"], idle)
        cases[ncaas, "status (no stack)"] = ([ncaas, "status"], idle)
        cases[ncaas, "status (running stack)"] = ([ncaas, "status"], running)
    samples: dict[tuple[str, str], list[tuple[float, float]]] = {key: [] for key in cases}
    for command, env in cases.values():
        timed(command, env)  # warm the page cache
    for _ in range(repeat):
        for key, (command, env) in cases.items():
            samples[key].append(timed(command, env))
    results: dict[str, dict[str, dict[str, float]]] = {}
    for (install, name), runs in samples.items():
        results.setdefault(install, {})[name] = {
            "wall_median_s": round(statistics.median(w for w, _ in runs), 3),
            "wall_min_s": round(min(w for w, _ in runs), 3),
            "cpu_median_s": round(statistics.median(c for _, c in runs), 3),
            "runs": len(runs),
        }
    return results


def table(results: dict[str, dict[str, dict[str, float]]], repeat: int) -> str:
    lines = [
        f"| installation | command (median of {repeat}) | wall | wall min | CPU | target |",
        "|---|---|---|---|---|---|",
    ]
    for install, commands in results.items():
        for name, r in commands.items():
            target = TARGETS.get(name)
            verdict = ""
            if target is not None:
                verdict = f"≤ {target} s: {'met' if r['wall_median_s'] <= target else 'missed'}"
            lines.append(
                f"| {install} | `{name}` | {r['wall_median_s']:.3f} s | {r['wall_min_s']:.3f} s "
                f"| {r['cpu_median_s']:.3f} s | {verdict} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument(
        "--ncaas",
        action="append",
        help="an ncaas-dev to time (repeatable; default: this checkout's .venv/bin/ncaas-dev)",
    )
    parser.add_argument("--json-only", action="store_true")
    args = parser.parse_args()
    installs = args.ncaas or [str(ROOT / ".venv" / "bin" / "ncaas-dev")]
    with tempfile.TemporaryDirectory(prefix="ncaas-bench-startup-") as tmp:
        work = Path(tmp)
        try:
            endpoint = start_stack(work / "state")
            results = measure(installs, args.repeat, work, endpoint)
        finally:
            stop_stack(work / "state")
    doc = {
        "ncaas": installs,
        "repeat": args.repeat,
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "python": sys.version.split()[0],
        "results": results,
    }
    if not args.json_only:
        print(table(results, args.repeat))
    print(json.dumps(doc))


if __name__ == "__main__":
    main()
