"""LocalStack's gateway server: simple S3 requests per second, hypercorn against twisted.

For each server, starts a LocalStack of its own on a free loopback port with the project's own
environment (``stack.localstack_env``, only GATEWAY_SERVER changed), then times ``--count``
PutObject (1 KiB each) and ``--count`` HeadObject calls in a row from one boto3 client, and
stops it. Rounds alternate between the servers so machine load hits both alike. Also records
the addresses each gateway listened on (from /proc/net/tcp and tcp6, by port).

    .venv/bin/python benchmarks/gateway.py [--count 500] [--rounds 2] [--json]
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
sys.path.insert(0, str(HERE.parent))

from ncaas_dev.aws import s3_client  # noqa: E402
from ncaas_dev.local.stack import PidFile, health_ok, localstack_command, localstack_env  # noqa: E402
from ncaas_dev.settings import Settings  # noqa: E402

SERVERS = ("hypercorn", "twisted")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening_on(port: int) -> list[str]:
    """Local addresses listening on ``port`` (IPv4 and IPv6), from /proc/net/tcp{,6}."""
    found = []
    for name, width in (("tcp", 8), ("tcp6", 32)):
        for line in Path(f"/proc/net/{name}").read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, _, hexport = local.partition(":")
            if state == "0A" and int(hexport, 16) == port and len(addr) == width:
                raw = bytes.fromhex(addr)
                if width == 8:
                    found.append(socket.inet_ntop(socket.AF_INET, raw[::-1]))
                else:
                    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                    found.append(socket.inet_ntop(socket.AF_INET6, words))
    return found


def measure(server: str, count: int) -> dict[str, Any]:
    state = Path(tempfile.mkdtemp(prefix=f"ncaas-gw-{server}-"))
    port = free_port()
    settings = Settings(endpoint_url=f"http://127.0.0.1:{port}", state_dir=state)
    env = {**localstack_env(settings), "GATEWAY_SERVER": server}
    log = (state / "localstack.log").open("wb")
    process = subprocess.Popen(
        localstack_command(settings),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    PidFile(state, "localstack").write(process.pid)
    try:
        started = time.monotonic()
        while not health_ok(str(settings.endpoint_url)):
            if process.poll() is not None or time.monotonic() - started > 90:
                raise SystemExit(f"{server}: LocalStack did not start, see {state}")
            time.sleep(0.1)
        startup = time.monotonic() - started
        s3 = s3_client(settings)
        s3.create_bucket(Bucket="gateway-bench")
        body = os.urandom(1024)
        s3.put_object(Bucket="gateway-bench", Key="warm", Body=body)  # first-request setup
        t0 = time.monotonic()
        for i in range(count):
            s3.put_object(Bucket="gateway-bench", Key=f"k{i}", Body=body)
        t1 = time.monotonic()
        for i in range(count):
            s3.head_object(Bucket="gateway-bench", Key=f"k{i}")
        t2 = time.monotonic()
        return {
            "server": server,
            "startup_s": round(startup, 2),
            "put_per_s": round(count / (t1 - t0), 1),
            "head_per_s": round(count / (t2 - t1), 1),
            "listening": listening_on(port),
        }
    finally:
        PidFile(state, "localstack").stop()
        log.close()
        shutil.rmtree(state, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = [measure(s, args.count) for _ in range(args.rounds) for s in SERVERS]
    summary = {
        s: {
            key: statistics.median(r[key] for r in results if r["server"] == s)
            for key in ("startup_s", "put_per_s", "head_per_s")
        }
        for s in SERVERS
    }
    load = os.getloadavg()[0]
    if args.json:
        print(json.dumps({"rounds": results, "median": summary, "load1": load}, indent=1))
        return
    for r in results:
        print(r)
    print(f"load average (1 min) at the end: {load:.2f}")
    for s, m in summary.items():
        print(
            f"{s:10s} median: start {m['startup_s']} s, {m['put_per_s']} PUT/s, "
            f"{m['head_per_s']} HEAD/s"
        )


if __name__ == "__main__":
    main()
