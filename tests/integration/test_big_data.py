"""Big data: a dataset goes up, through an analysis and back down, streamed, its checksum intact.

Size: ``NCAAS_BIG_DATA_GIB`` (default 0.25, the CI version, ~1 min). The full run (~5 min,
30 GiB of free disk), figures printed:

    NCAAS_BIG_DATA_GIB=5 .venv/bin/pytest -s tests/integration/test_big_data.py

Each transfer runs in its own process, as in real use (the CLI's upload, the runner, the CLI's
``results``), and ``wait4`` gives that process's peak resident memory, which must stay flat
whatever the size. Interruptions are real (SIGKILL mid-transfer); faults that cannot be caused
from outside (a connection dropped halfway) are injected at the S3 client under the adapter.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from waiting import wait_until  # tests/ is on sys.path: pytest's rootdir conftest

from ncaas_dev.analysis import AnalysisRecord
from ncaas_dev.blueprint import LoadedBlueprint, load_blueprint
from ncaas_dev.containers import Engine
from ncaas_dev.errors import StorageError
from ncaas_dev.jobstore import JobStore
from ncaas_dev.launchers.base import DatasetTask
from ncaas_dev.layout import JobPaths
from ncaas_dev.settings import Settings
from ncaas_dev.status import DatasetStatus, JobStatus, State, utcnow
from ncaas_dev.storage import SMALL_FILE, Storage

from .jobs import NCAAS_DEV, copy_blueprint, pin_image, remove_image

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "sandbox"
TRANSFER = ROOT / "benchmarks" / "transfer.py"
GIB = float(os.environ.get("NCAAS_BIG_DATA_GIB", "0.25"))
SIZE = int(GIB * 1024**3)
# The CI size runs in the default run; a multi-GiB run is also marked `big` so it can be picked.
pytestmark = [pytest.mark.integration, *([pytest.mark.big] if GIB > 1 else [])]
CHUNK = 16 * 1024**2
# Interruptions need a transfer long enough to be caught halfway, not the full size.
INTERRUPT_SIZE = min(SIZE, 256 * 1024**2)
# Python + boto3 + 4 parts of 16 MiB in flight: flat, whatever the dataset's size.
MAX_RSS_MIB = 256


@dataclass
class Measured:
    seconds: float
    peak_rss_mib: float
    returncode: int
    output: str

    def throughput(self, size: int) -> float:
        return size / 1024**2 / self.seconds


# The process is started by a small Python of its own, which reports the process's own peak
# RSS. Measured straight from pytest it would be wrong: Linux carries a process's high-water
# mark across exec, so a child forked from a pytest that has grown (browser tests, say) would
# report pytest's size, not its own.
_REPORT_PEAK = """
import json, os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    json.dump({"maxrss_kib": usage.ru_maxrss, "exit": os.waitstatus_to_exitcode(status)}, f)
"""


def measured(args: list[str], env: dict[str, str], timeout: float = 1800) -> Measured:
    """Run a process to its end; its wall time and its own peak RSS (``wait4`` rusage)."""
    state = Path(env["NCAAS_STATE_DIR"])
    token = secrets.token_hex(3)
    log, report = state / f"proc-{token}.log", state / f"proc-{token}.json"
    started = time.monotonic()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", _REPORT_PEAK, str(report), *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a timeout stops the process and its reporter together
        )
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise AssertionError(f"{args} still running after {timeout} s") from None
    assert process.returncode == 0, f"the peak reporter failed: {log.read_text()[-2000:]}"
    doc = json.loads(report.read_text())
    return Measured(
        seconds=time.monotonic() - started,
        peak_rss_mib=doc["maxrss_kib"] / 1024,  # Linux reports KiB
        returncode=doc["exit"],
        output=log.read_text(errors="replace")[-3000:],
    )


def write_dataset(path: Path, size: int) -> str:
    """``size`` bytes, every 16 MiB chunk distinct (so a reordered part changes the digest)."""
    block = bytearray(secrets.token_bytes(CHUNK))
    digest = hashlib.sha256()
    with path.open("wb") as f:
        for index, offset in enumerate(range(0, size, CHUNK)):
            block[:8] = index.to_bytes(8, "little")
            piece = memoryview(block)[: min(CHUNK, size - offset)]
            f.write(piece)
            digest.update(piece)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Bench:
    bucket: str
    folder: Path
    work: Path
    env: dict[str, str]
    storage: Storage
    record: AnalysisRecord


@pytest.fixture(scope="module")
def bench(
    tmp_path_factory: pytest.TempPathFactory, engine: Engine, storage: Storage, settings: Settings
) -> Iterator[Bench]:
    """A bucket of its own (not provisioned: no dispatcher touches it) and the copy analysis."""
    work = tmp_path_factory.mktemp("big-data")
    free = shutil.disk_usage(work).free
    # LocalStack's objects and their parts, runner scratch, the container's copy, the result.
    need = 6 * SIZE + 2 * 1024**3
    assert free > need, f"{free / 1024**3:.1f} GiB free in {work}; {need / 1024**3:.1f} needed"
    folder = copy_blueprint(FIXTURE, work / "blueprint", "ncaas-big")
    loaded: LoadedBlueprint = load_blueprint(folder)
    record = AnalysisRecord.of(loaded, engine.build(loaded))
    pin_image(engine, loaded.blueprint.image_tag)
    storage.ensure_bucket(loaded.blueprint.analysis, settings.region)
    assert settings.endpoint_url
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": settings.endpoint_url,
        "NCAAS_STATE_DIR": str(work / "state"),
    }
    (work / "state").mkdir()
    yield Bench(loaded.blueprint.analysis, folder, work, env, storage, record)
    remove_image(engine, loaded.blueprint.image_tag)
    for obj in storage.list_objects(loaded.blueprint.analysis, ""):  # GiBs on LocalStack's disk
        storage.s3.delete_object(Bucket=loaded.blueprint.analysis, Key=obj.key)
    storage.s3.delete_bucket(Bucket=loaded.blueprint.analysis)


def figures(name: str, doc: dict[str, Any]) -> None:
    """Figures for the report, printed (run with -s) and kept next to the test's files."""
    print(f"\n{name}: {json.dumps(doc)}")


def test_dataset_round_trip_is_streamed_and_intact(bench: Bench, settings: Settings) -> None:
    source = bench.work / "big.bin"
    started = time.monotonic()
    digest = write_dataset(source, SIZE)
    made = time.monotonic() - started
    key = "labA/inputs/big.bin"
    python = sys.executable

    # 1. Upload, as `ncaas-dev run`/`submit` does (the same Storage.upload_file).
    up = measured([python, str(TRANSFER), "up", str(source), bench.bucket, key], bench.env)
    assert up.returncode == 0, up.output
    source.unlink()  # the digest is known; the disk is needed for what follows

    # 2. The runner, started as the launcher starts it: fetch, run the analysis, upload outputs.
    job = f"job_big_{secrets.token_hex(3)}"
    status = JobStatus(
        job=job,
        analysis=bench.bucket,
        group="labA",
        submission="labA/submissions/big_submit.json",
        configname="labA/configs/copy.json",
        datasets={
            "big.bin": DatasetStatus(
                key=key, runner="docker:test", claimed_by="pytest-big:1", claimed_at=utcnow()
            )
        },
    )
    bench.storage.put_bytes(bench.bucket, "labA/configs/copy.json", b'{"mode": "copy"}')
    assert JobStore(bench.storage, bench.bucket).create(status)
    task = DatasetTask(
        bucket=bench.bucket,
        group="labA",
        job=job,
        dataset="big.bin",
        data_key=key,
        config_key="labA/configs/copy.json",
        record=bench.record,
        endpoint_url=settings.endpoint_url,
        region=settings.region,
    )
    task_file = bench.work / "task.json"
    task_file.write_text(task.model_dump_json())
    run = measured([python, "-m", "ncaas_dev.runner", str(task_file)], bench.env)
    assert run.returncode == 0, run.output
    final = JobStore(bench.storage, bench.bucket).read("labA", job)
    assert final.state == State.SUCCEEDED, (final.reason, final.datasets["big.bin"].reason)
    outputs = JobPaths("labA", job).outputs("big.bin")
    seen_inside = bench.storage.get_bytes(bench.bucket, outputs + "sha256.txt")[0].decode()
    assert seen_inside.strip() == digest, "the analysis saw different bytes"

    # 3. Download of the job folder, as `ncaas-dev results` does.
    out = bench.work / "results"
    cli = NCAAS_DEV
    down = measured(
        [str(cli), "results", str(bench.folder), job, "--group", "labA", "--out", str(out)],
        bench.env,
    )
    assert down.returncode == 0, down.output
    copy = out / job / "process_results" / "big.bin" / "big.bin"
    assert copy.stat().st_size == SIZE
    assert sha256_of(copy) == digest
    assert not [p.name for p in copy.parent.iterdir() if ".part" in p.name]

    figures(
        "big-data",
        {
            "gib": GIB,
            "write_s": round(made, 1),
            "upload": {
                "s": round(up.seconds, 1),
                "mib_s": round(up.throughput(SIZE)),
                "peak_rss_mib": round(up.peak_rss_mib),
            },
            # The runner moves the dataset twice (input down, copy up) and runs the container.
            "runner": {"s": round(run.seconds, 1), "peak_rss_mib": round(run.peak_rss_mib)},
            "results_download": {
                "s": round(down.seconds, 1),
                "mib_s": round(down.throughput(SIZE)),
                "peak_rss_mib": round(down.peak_rss_mib),
            },
        },
    )
    for step in (up, run, down):
        assert step.peak_rss_mib < MAX_RSS_MIB, (step.peak_rss_mib, step.output)
    bench.storage.s3.delete_object(Bucket=bench.bucket, Key=outputs + "big.bin")
    shutil.rmtree(out)


def _wait_for(predicate: Any, timeout: float, what: str) -> Any:
    return wait_until(predicate, timeout, what, interval=0.005)


def _parts(folder: Path, name: str) -> list[Path]:
    return [p for p in folder.glob(f".{name}.*") if ".part" in p.name]


def test_killed_download_leaves_no_whole_looking_file(bench: Bench) -> None:
    source = bench.work / "to-fetch.bin"
    digest = write_dataset(source, INTERRUPT_SIZE)
    key = "labA/inputs/to-fetch.bin"
    bench.storage.upload_file(source, bench.bucket, key)
    target_dir = bench.work / "fetched"
    target_dir.mkdir()
    target = target_dir / "to-fetch.bin"
    args = [sys.executable, str(TRANSFER), "down", str(target), bench.bucket, key]
    process = subprocess.Popen(args, env=bench.env)
    try:

        def halfway() -> bool:
            sizes = [p.stat().st_size for p in _parts(target_dir, target.name) if p.exists()]
            return any(CHUNK <= s < INTERRUPT_SIZE for s in sizes)

        _wait_for(halfway, 60, "no partial download seen")
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not target.exists(), "a half download took the file's real name"
    left = _parts(target_dir, target.name)
    assert left, "the partial download should remain as a hidden .part file"

    # The next download succeeds, is whole, and removes what the killed one left.
    bench.storage.download_file(bench.bucket, key, target)
    assert target.stat().st_size == INTERRUPT_SIZE and sha256_of(target) == digest
    assert _parts(target_dir, target.name) == []


def test_killed_upload_never_publishes_a_partial_object(bench: Bench) -> None:
    source = bench.work / "to-send.bin"
    digest = write_dataset(source, INTERRUPT_SIZE)
    key = "labA/inputs/to-send.bin"
    previous = bench.storage.put_bytes(bench.bucket, key, b"the earlier version\n")
    args = [sys.executable, str(TRANSFER), "up", str(source), bench.bucket, key]
    process = subprocess.Popen(args, env=bench.env)
    s3 = bench.storage.s3
    try:

        def parts_uploaded() -> bool:
            uploads = s3.list_multipart_uploads(Bucket=bench.bucket, Prefix=key).get("Uploads", [])
            return any(
                s3.list_parts(Bucket=bench.bucket, Key=key, UploadId=u["UploadId"]).get("Parts")
                for u in uploads
            )

        _wait_for(parts_uploaded, 60, "no multipart upload in progress")
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL
    head = bench.storage.head(bench.bucket, key)
    assert head is not None and head.etag == previous, "the key changed although the upload died"
    dangling = s3.list_multipart_uploads(Bucket=bench.bucket, Prefix=key).get("Uploads", [])
    figures("killed-upload", {"dangling_multipart_uploads": len(dangling)})

    # Uploading again replaces the object with the whole file.
    etag = bench.storage.upload_file(source, bench.bucket, key)
    assert etag != previous
    fetched = bench.work / "sent-back.bin"
    bench.storage.download_file(bench.bucket, key, fetched)
    assert sha256_of(fetched) == digest
    for upload in dangling:  # what a lifecycle rule would do in the cloud
        s3.abort_multipart_upload(Bucket=bench.bucket, Key=key, UploadId=upload["UploadId"])


# -- faults injected under the adapter: a connection dropped halfway -------------------------
class _DroppedBody:
    """A response body that loses its connection halfway."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def read(self, *_: Any) -> bytes:
        self.real.read(500)
        raise ReadTimeoutError(endpoint_url="http://s3")

    def close(self) -> None:
        self.real.close()


class DroppingS3:
    """An S3 client whose transfers write half the data, then lose the connection: both the
    one-request path of small files and the multipart path of large ones."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def download_file(self, bucket: str, key: str, filename: str, **_: Any) -> None:
        with open(filename, "wb") as f:
            f.write(b"\0" * 1000)
        raise ReadTimeoutError(endpoint_url="http://s3")

    def get_object(self, **kwargs: Any) -> Any:
        reply = self.real.get_object(**kwargs)
        return {**reply, "Body": _DroppedBody(reply["Body"])}

    def upload_file(self, *_: Any, **__: Any) -> None:
        raise ClientError({"Error": {"Code": "RequestTimeout", "Message": "dropped"}}, "Upload")

    def put_object(self, **_: Any) -> None:
        raise ClientError({"Error": {"Code": "RequestTimeout", "Message": "dropped"}}, "PutObject")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


SIZES = [1000, SMALL_FILE + 1]  # one request, and parts


@pytest.mark.parametrize("size", SIZES)
def test_download_dropped_halfway_fails_cleanly(bench: Bench, tmp_path: Path, size: int) -> None:
    key = f"labA/inputs/whole-{secrets.token_hex(3)}.bin"
    bench.storage.put_bytes(bench.bucket, key, b"y" * size)
    broken = Storage(DroppingS3(bench.storage.s3), bench.storage.endpoint)  # type: ignore[arg-type]
    target = tmp_path / "out" / "rec.bin"
    with pytest.raises(StorageError, match="download s3://"):
        broken.download_file(bench.bucket, key, target)
    assert list(target.parent.iterdir()) == [], "neither the file nor a .part may remain"


@pytest.mark.parametrize("size", SIZES)
def test_upload_dropped_halfway_fails_cleanly(bench: Bench, tmp_path: Path, size: int) -> None:
    broken = Storage(DroppingS3(bench.storage.s3), bench.storage.endpoint)  # type: ignore[arg-type]
    source = tmp_path / "rec.bin"
    source.write_bytes(b"x" * size)
    key = f"labA/inputs/dropped-{secrets.token_hex(3)}.bin"
    with pytest.raises(StorageError, match="RequestTimeout"):
        broken.upload_file(source, bench.bucket, key)
    assert bench.storage.head(bench.bucket, key) is None
