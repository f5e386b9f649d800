"""The web client: a browser upload against `aws s3 cp`, the server's memory, submit -> running.

Starts a LocalStack of its own on a free loopback port, builds and provisions the no-op
analysis (``benchmarks/noop``), starts a dispatcher and `ncaas-dev web` (a process of its own,
so its memory is its own), and drives Debian's Chromium through Playwright:
- uploads one ``--mib`` file (default 1024) from the browser (presigned multipart straight to
  S3) and the same file with ``aws s3 cp`` to the same endpoint; reports both times and the
  web server's resident memory before and at its peak during the browser upload (sampled
  every 50 ms from /proc, and the kernel's high-water mark VmHWM);
- submits the no-op analysis ``--runs`` times and reports the time from clicking Submit to
  the job page showing ``running`` (or a later state: ``true`` may end before the page looks).

    .venv/bin/python benchmarks/bench_web.py [--mib 1024] [--runs 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))

from browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402  (tests/browser.py)
from load import free_port, noop_blueprint, stop_stack  # noqa: E402

MiB = 1024**2


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class Sampler(threading.Thread):
    """The largest VmRSS of ``pid`` while running."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.05)


def write_file(path: Path, size: int) -> None:
    with path.open("wb") as out:
        for _ in range(size // MiB):
            out.write(os.urandom(MiB))


def start_web(settings: Any, port: int) -> tuple[subprocess.Popen[str], str]:
    env = {
        **os.environ,
        "NCAAS_STATE_DIR": str(settings.state_dir),
        "NCAAS_NO_COMMAND_SERVER": "1",
    }
    ncaas = Path(sys.executable).parent / "ncaas-dev"
    process = subprocess.Popen(
        [str(ncaas), "web", "--port", str(port), "--endpoint-url", settings.endpoint_url],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    for line in process.stderr:
        found = re.search(r"(http://\S+/signin\?token=\S+)", line)
        if found:
            threading.Thread(target=process.stderr.read, daemon=True).start()  # drain
            return process, found.group(1)
    raise RuntimeError("ncaas-dev web printed no sign-in URL")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=1024, help="upload size in MiB")
    parser.add_argument("--runs", type=int, default=3, help="submissions timed")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from playwright.sync_api import expect, sync_playwright

    from ncaas_dev.analysis import AnalysisRecord
    from ncaas_dev.aws import s3_client, sqs_client
    from ncaas_dev.containers import Engine, connect
    from ncaas_dev.local.provision import provision
    from ncaas_dev.local.stack import start_dispatcher, start_localstack
    from ncaas_dev.settings import Settings
    from ncaas_dev.storage import Storage

    work = Path(tempfile.mkdtemp(prefix="ncaas-web-bench-"))
    settings = Settings(endpoint_url=f"http://127.0.0.1:{free_port()}", state_dir=work / "state")
    loaded = noop_blueprint(work, "ncaas-web-bench", groups=[{"name": "bench", "users": ["ana"]}])
    bucket = loaded.blueprint.analysis
    engine = Engine(connect())
    log = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr))
    web: subprocess.Popen[str] | None = None
    report: dict[str, Any] = {}
    try:
        log(f"starting LocalStack at {settings.endpoint_url}")
        start_localstack(settings)
        storage = Storage(s3_client(settings), settings.endpoint_url)
        provision(
            storage, sqs_client(settings), settings, AnalysisRecord.of(loaded, engine.build(loaded))
        )
        start_dispatcher(settings, "docker")
        data = work / "upload.bin"
        write_file(data, args.mib * MiB)
        port = free_port()
        web, link = start_web(settings, port)
        origin = f"http://127.0.0.1:{port}"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(link)
            page.click("form.choice button[value='ana']")
            page.goto(f"{origin}/a/{bucket}")
            idle_rss = rss_kib(web.pid)
            sampler = Sampler(web.pid)
            sampler.start()
            started = time.monotonic()
            page.set_input_files("#pick-inputs", str(data))
            status = page.locator(f"#uploads li[data-name='{data.name}'] .status")
            expect(status).to_have_text("uploaded", timeout=1_800_000)
            browser_s = time.monotonic() - started
            sampler.done.set()
            sampler.join()
            log(f"browser upload: {browser_s:.1f} s")

            aws = Path(sys.executable).parent / "aws"
            env = {
                **os.environ,
                "AWS_ACCESS_KEY_ID": "test",
                "AWS_SECRET_ACCESS_KEY": "test",
                "AWS_DEFAULT_REGION": "us-east-1",
            }
            started = time.monotonic()
            subprocess.run(
                [
                    str(aws),
                    "s3",
                    "cp",
                    str(data),
                    f"s3://{bucket}/bench/inputs/cli.bin",
                    "--endpoint-url",
                    settings.endpoint_url,
                    "--only-show-errors",
                ],
                env=env,
                check=True,
            )
            cli_s = time.monotonic() - started
            log(f"aws s3 cp: {cli_s:.1f} s")

            storage.put_bytes(bucket, "bench/inputs/tiny.bin", b"0")
            to_running: list[float] = []
            for _ in range(args.runs):
                page.goto(f"{origin}/a/{bucket}?data=bench/inputs/tiny.bin")
                clicked = time.monotonic()
                page.click("#submit")
                page.wait_for_url(re.compile(r".*/jobs/job_[^/]+$"), timeout=60_000)
                expect(page.locator("#job-state")).to_have_text(
                    re.compile("running|succeeded|failed"), timeout=60_000
                )
                to_running.append(time.monotonic() - clicked)
                expect(page.locator("#job-state")).to_have_text("succeeded", timeout=60_000)
            browser.close()
        report = {
            "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": f"{platform.node()}: {os.cpu_count()} cores, {platform.platform()}",
            "upload_mib": args.mib,
            "browser_upload_s": round(browser_s, 2),
            "browser_mib_per_s": round(args.mib / browser_s, 1),
            "aws_s3_cp_s": round(cli_s, 2),
            "aws_s3_cp_mib_per_s": round(args.mib / cli_s, 1),
            "web_rss_idle_mib": round(idle_rss / 1024, 1),
            "web_rss_peak_during_upload_mib": round(sampler.peak / 1024, 1),
            "web_vmhwm_mib": round(rss_kib(web.pid, "VmHWM") / 1024, 1),
            "submit_to_running_s": [round(t, 2) for t in to_running],
            "submit_to_running_median_s": round(statistics.median(to_running), 2),
        }
    finally:
        if web is not None:
            web.terminate()
            web.wait(10)
        stop_stack(settings, engine, bucket)
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name, value in report.items():
            print(f"{name}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
