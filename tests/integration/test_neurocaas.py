"""NeuroCAAS interoperability against the real stack: a client that knows only NeuroCAAS's
conventions (raw boto3, `job__{bucket}_{ts}`, polling end.txt) gets its job run; folder
datasets, per-submission instance types and the config's `__duration__`."""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from ncaas_dev.analysis import AnalysisRecord
from ncaas_dev.aws import sqs_client
from ncaas_dev.blueprint import LoadedBlueprint
from ncaas_dev.local.provision import provision
from ncaas_dev.pricing import hourly_price
from ncaas_dev.settings import Settings
from ncaas_dev.status import State
from ncaas_dev.storage import Storage

from .jobs import Lab, assert_no_dataset_left_open, ncaas

pytestmark = pytest.mark.integration

DIVIDER = "================"
DATANAME_LINE = re.compile(
    r"^DATANAME: (?P<key>.+) \| STATUS: (?P<status>[A-Z ]+) \| TIME: (?P<time>\S+) "
    r"\| LAST COMMAND: (?P<last>.*)$"
)


def compat_lab(storage: Storage, settings: Settings, probe: LoadedBlueprint) -> Lab:
    """The probe's image as a `compat: neurocaas` analysis of its own."""
    bp = probe.blueprint
    variant = bp.model_copy(
        update={
            "analysis": f"{bp.analysis}-nc{secrets.token_hex(2)}",
            "compat": "neurocaas",
            "cloud": bp.cloud.model_copy(update={"allowed_instance_types": ["c5.large"]}),
            "limits": bp.limits.model_copy(update={"max_files_per_dataset": 5}),
        }
    )
    record = AnalysisRecord(blueprint=variant, content_hash=probe.content_hash, image=bp.image_tag)
    provision(storage, sqs_client(settings), settings, record)
    return Lab(storage, variant.analysis)


@pytest.fixture(scope="module")
def nc_lab(storage: Storage, settings: Settings, probe: LoadedBlueprint, dispatcher: int) -> Lab:
    return compat_lab(storage, settings, probe)


class NeuroCaasClient:
    """What a NeuroCAAS user's script does, and nothing of ncaas-dev: boto3 and the names."""

    def __init__(self, endpoint: str, bucket: str, group: str = "labA") -> None:
        self.s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        self.bucket, self.group = bucket, group

    def upload(self, folder: str, name: str, body: bytes) -> str:
        key = f"{self.group}/{folder}/{name}"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        return key

    def submit(self, dataname: Any, configname: str, timestamp: str) -> str:
        doc = {"dataname": dataname, "configname": configname, "timestamp": timestamp}
        key = f"{self.group}/submissions/{timestamp}_submit.json"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=json.dumps(doc).encode())
        return f"{self.group}/results/job__{self.bucket}_{timestamp}/"

    def wait_end(self, job: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                body = self.s3.get_object(Bucket=self.bucket, Key=f"{job}process_results/end.txt")
                return str(body["Body"].read().decode())
            except self.s3.exceptions.NoSuchKey:
                time.sleep(2)  # NeuroCAAS's clients poll every 2 s
        raise AssertionError(f"no {job}process_results/end.txt within {timeout} s")

    def download(self, prefix: str, target: Path) -> list[Path]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        files = []
        for page in pages:
            for obj in page.get("Contents", []):
                path = target / obj["Key"]
                path.parent.mkdir(parents=True, exist_ok=True)
                self.s3.download_file(self.bucket, obj["Key"], str(path))
                files.append(path)
        return files


def parse_certificate(text: str) -> list[dict[str, str]]:
    lines = text.splitlines()
    assert lines[0] == "PER ENVIRONMENT MONITORING:"
    dividers = [i for i, line in enumerate(lines) if line == DIVIDER]
    assert len(dividers) == 2 and dividers[0] == 1, text
    rows = []
    for line in lines[dividers[0] + 1 : dividers[1]]:
        match = DATANAME_LINE.match(line)
        assert match, line
        rows.append(match.groupdict())
    return rows


def run_as_neurocaas_user(
    settings: Settings, lab: Lab, tmp_path: Path, cfg: dict[str, object]
) -> tuple[str, dict[str, Any], list[dict[str, str]], str, Path]:
    assert settings.endpoint_url
    client = NeuroCaasClient(settings.endpoint_url, lab.bucket)
    data = client.upload("inputs", f"rec-{secrets.token_hex(3)}.bin", b"\x02" * 1500)
    config = client.upload("configs", "config.yaml", json.dumps(cfg).encode())
    stamp = time.strftime("%Y%m%d%H%M%S") + secrets.token_hex(2)
    job = client.submit(data, config, stamp)
    end = client.wait_end(job)
    client.download(f"{job}logs/", tmp_path)
    client.download(f"{job}process_results/", tmp_path)
    name = data.rsplit("/", 1)[1]
    status_file = tmp_path / job / "logs" / f"DATASET_NAME:{name}_STATUS.txt"
    doc = json.loads(status_file.read_text())
    rows = parse_certificate((tmp_path / job / "logs/certificate.txt").read_text())
    assert [r["key"] for r in rows] == [data]
    assert doc["input"] == data
    return end, doc, rows, data, tmp_path / job


def test_a_neurocaas_client_completes_a_job(
    settings: Settings, nc_lab: Lab, tmp_path: Path
) -> None:
    cfg = {"lines": 5, "line_interval": 1.5}  # runs ~7 s: its usage is sampled meanwhile
    end, doc, rows, data, folder = run_as_neurocaas_user(settings, nc_lab, tmp_path, cfg)
    assert end.strip() == "end of analysis marker"
    assert doc["status"] == "SUCCESS" and rows[0]["status"] == "SUCCESS"
    assert doc["instance"].startswith("docker:") and doc["job_start"] and doc["job_finish"]
    assert list(doc["std"].values())[-1] == "finished" and "line 0" in doc["std"].values()
    assert rows[0]["last"] == "finished"
    assert doc["memory_usage"] > 0 and doc["cpu_usage"] >= 0  # bytes (peak seen), CPU seconds
    name = data.rsplit("/", 1)[1]
    assert (folder / "process_results" / name / "done.txt").read_text() == "done\n"
    status = json.loads((folder / "logs/status.json").read_text())  # ncaas-dev's own, too
    assert status["state"] == "succeeded" and status["layout"] == "neurocaas"
    assert status["job"] == folder.name and folder.name.startswith(f"job__{nc_lab.bucket}_")


def test_a_failing_analysis_reads_failed_with_its_exit_code(
    settings: Settings, nc_lab: Lab, tmp_path: Path
) -> None:
    end, doc, rows, _, _ = run_as_neurocaas_user(settings, nc_lab, tmp_path, {"exit": 3})
    assert end.strip() == "end of analysis marker"
    assert doc["status"] == "FAILED" and rows[0]["status"] == "FAILED"
    assert "exited with code 3" in doc["reason"]


def _folder_state(storage: Storage, bucket: str, prefix: str) -> dict[str, str]:
    return {o.key: o.etag for o in storage.list_objects(bucket, prefix)}


def test_a_duplicate_timestamp_never_touches_the_first_jobs_folder(nc_lab: Lab) -> None:
    stamp = f"dup{secrets.token_hex(3)}"
    first_folder = f"job__{nc_lab.bucket}_{stamp}"
    data = nc_lab.dataset()
    # Two submissions with the same timestamp at once: exactly one gets the folder.
    both = []
    threads = [
        threading.Thread(
            target=lambda: both.append(
                nc_lab.submit(dataname=data, configname=nc_lab.config(sleep=1), timestamp=stamp)
            )
        )
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    jobs = {nc_lab.wait_job(s): s for s in both}
    assert first_folder in jobs, jobs
    (loser,) = set(jobs) - {first_folder}
    assert loser.startswith(f"{first_folder}_duplicate-")
    lost = nc_lab.wait_end(loser)
    assert lost.state == State.REJECTED and "already taken" in (lost.reason or "")
    assert_no_dataset_left_open(lost)
    assert lost.submission == jobs[loser].key
    won = nc_lab.wait_end(first_folder)
    assert won.state == State.SUCCEEDED and won.submission == jobs[first_folder].key
    before = _folder_state(nc_lab.storage, nc_lab.bucket, nc_lab.paths(first_folder).root)
    # A third, later, is answered the same way; the first folder stays exactly as it was.
    third = nc_lab.submit(dataname=data, configname=nc_lab.config(), timestamp=stamp)
    late = nc_lab.wait_end(nc_lab.wait_job(third))
    assert late.state == State.REJECTED and late.job != first_folder
    assert "rejected: timestamp" in nc_lab.text(nc_lab.paths(late.job).certificate)
    after = _folder_state(nc_lab.storage, nc_lab.bucket, nc_lab.paths(first_folder).root)
    assert after == before


def test_a_folder_is_one_dataset_with_its_sub_paths(nc_lab: Lab) -> None:
    folder = f"tifs{secrets.token_hex(2)}"
    for name in ("a.tif", "b.tif", "sub/c.tif"):
        nc_lab.put("inputs", f"{folder}/{name}", name.encode())
    key = f"labA/inputs/{folder}/"
    status = nc_lab.run(dataname=key, configname=nc_lab.config(lines=1))
    assert status.state == State.SUCCEEDED, status.reason
    assert list(status.datasets) == [folder] and status.datasets[folder].key == key
    facts = json.loads(nc_lab.text(nc_lab.paths(status.job).outputs(folder) + "facts.json"))
    assert facts["files"] == ["a.tif", "b.tif", "sub/c.tif"]
    assert facts["env"]["NCAAS_DATA"] == f"/ncaas/input/{folder}"
    assert status.provenance["inputs"][key].startswith("folder:3:")
    doc = json.loads(nc_lab.text(nc_lab.paths(status.job).dataset_status(folder)))
    assert doc["status"] == "SUCCESS" and doc["input"] == key


def test_an_empty_or_too_big_folder_is_rejected_with_a_reason(nc_lab: Lab) -> None:
    empty = nc_lab.run(dataname=f"labA/inputs/nothing{secrets.token_hex(2)}/")
    assert empty.state == State.REJECTED and "is empty" in (empty.reason or "")
    big = f"many{secrets.token_hex(2)}"
    for i in range(6):  # the lab's limits.max_files_per_dataset is 5
        nc_lab.put("inputs", f"{big}/f{i}", b"x")
    refused = nc_lab.run(dataname=f"labA/inputs/{big}/")
    assert refused.state == State.REJECTED
    assert "more than 5 objects (limits.max_files_per_dataset)" in (refused.reason or "")
    end = nc_lab.text(nc_lab.paths(refused.job).end)
    assert end == "end of analysis marker\n"
    (name,) = refused.datasets
    doc = json.loads(nc_lab.text(nc_lab.paths(refused.job).dataset_status(name)))
    assert doc["status"] == "FAILED" and "max_files_per_dataset" in doc["reason"]


def test_an_allowed_instance_type_is_used_and_costed(nc_lab: Lab) -> None:
    status = nc_lab.run(
        dataname=nc_lab.dataset(), configname=nc_lab.config(lines=1), instance_type="c5.large"
    )
    assert status.state == State.SUCCEEDED
    assert status.provenance["instance_type"] == "c5.large"
    assert status.provenance["price_usd_per_hour"] == hourly_price("c5.large")
    assert "c5.large" in " ".join(e.message for e in status.events if "budget" in e.message)


def test_an_instance_type_not_allowed_is_rejected_naming_the_allowed_ones(nc_lab: Lab) -> None:
    status = nc_lab.run(dataname=nc_lab.dataset(), instance_type="p4d.24xlarge")
    assert status.state == State.REJECTED
    assert "'p4d.24xlarge' is not allowed" in (status.reason or "")
    assert "allowed: m5.xlarge, c5.large" in (status.reason or "")


def test_duration_shortens_the_timeout(nc_lab: Lab) -> None:
    status = nc_lab.run(dataname=nc_lab.dataset(), configname=nc_lab.config(
        __duration__=0.05, lines=1, sleep=30))  # fmt: skip
    assert status.state == State.TIMED_OUT
    assert "after 3 s" in (status.reason or "") and "__duration__" in (status.reason or "")
    assert status.provenance["timeout_seconds"] == 3


def test_duration_never_extends_past_run_timeout(nc_lab: Lab) -> None:
    status = nc_lab.run(dataname=nc_lab.dataset(), configname=nc_lab.config(
        __duration__=600, lines=1))  # fmt: skip
    assert status.state == State.SUCCEEDED
    assert status.provenance["timeout_seconds"] == 60  # the probe's run.timeout
    assert any("capped at run.timeout" in e.message for e in status.events)


@pytest.mark.parametrize("bad", [0, -5, "ten", True, None])
def test_a_bad_duration_is_rejected(nc_lab: Lab, bad: object) -> None:
    status = nc_lab.run(dataname=nc_lab.dataset(), configname=nc_lab.config(__duration__=bad))
    assert status.state == State.REJECTED
    assert "__duration__" in (status.reason or "") and "positive number" in (status.reason or "")


def test_run_data_dir_uploads_a_folder_as_one_dataset(
    probe: LoadedBlueprint, cli_env: dict[str, str], tmp_path: Path
) -> None:
    tifs = tmp_path / "tifs"
    (tifs / "deep").mkdir(parents=True)
    (tifs / "one.tif").write_bytes(b"1")
    (tifs / "deep" / "two.tif").write_bytes(b"22")
    out = tmp_path / "results"
    result = ncaas(["run", str(probe.folder), "--data", f"{tifs}/", "--out", str(out)], cli_env)
    assert result.returncode == 0, result.stdout + result.stderr
    (job_dir,) = out.iterdir()
    facts = json.loads((job_dir / "process_results/tifs/facts.json").read_text())
    assert facts["files"] == ["deep/two.tif", "one.tif"]
    assert facts["env"]["NCAAS_DATA"] == "/ncaas/input/tifs"
    (tifs / "one.tif").unlink()  # `submit` uploads the folder as it is now, nothing older
    sent = ncaas(["submit", str(probe.folder), "--data", str(tifs), "--wait", "--json"], cli_env)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    finished = json.loads(sent.stdout)
    assert list(finished["datasets"]) == ["tifs"]
    assert finished["provenance"]["inputs"]["labA/inputs/tifs/"].startswith("folder:1:")
    (tmp_path / "empty").mkdir()
    empty = ncaas(["run", str(probe.folder), "--data", str(tmp_path / "empty")], cli_env)
    assert empty.returncode == 2 and "the folder is empty" in empty.stderr


def test_submissions_without_a_timestamp_in_the_same_second_both_run(nc_lab: Lab) -> None:
    """ncaas-dev's own client names no timestamp unless asked: never a duplicate by accident."""
    data = nc_lab.dataset()
    sent = [nc_lab.client.submit("labA", [data], None) for _ in range(2)]
    jobs = [nc_lab.wait_job(s) for s in sent]
    assert jobs[0] != jobs[1] and all(j.startswith(f"job__{nc_lab.bucket}_") for j in jobs)
    assert [nc_lab.wait_end(j).state for j in jobs] == [State.SUCCEEDED, State.SUCCEEDED]
