"""The analysis container is a sandbox: a hostile analysis tries every escape and reports back.

The hostile analysis (tests/fixtures/sandbox) runs through the real runner on the real Docker
engine against the session's LocalStack, with AWS credentials planted in the runner's own
environment and home. Every assertion reads what the analysis itself wrote to its outputs.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ncaas_dev.analysis import AnalysisRecord
from ncaas_dev.aws import sqs_client
from ncaas_dev.blueprint import LoadedBlueprint, load_blueprint
from ncaas_dev.containers import Engine, pids_limit
from ncaas_dev.jobstore import JobStore
from ncaas_dev.launchers.base import DatasetTask
from ncaas_dev.layout import JobPaths
from ncaas_dev.provision import provision
from ncaas_dev.runner import Runner
from ncaas_dev.settings import Settings
from ncaas_dev.status import DatasetStatus, JobStatus, State, utcnow
from ncaas_dev.storage import Storage

from .jobs import Lab, copy_blueprint

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "sandbox"
CANARY_KEY = f"AKIACANARY{secrets.token_hex(5).upper()}"
CANARY_SECRET = f"canary-secret-{secrets.token_hex(8)}"
MEMORY = 512 * 1024**2


@pytest.fixture(scope="module")
def sandbox(
    tmp_path_factory: pytest.TempPathFactory, engine: Engine, storage: Storage, settings: Settings
) -> Iterator[tuple[LoadedBlueprint, AnalysisRecord]]:
    """The hostile analysis, built and provisioned under a bucket of its own."""
    folder = copy_blueprint(FIXTURE, tmp_path_factory.mktemp("sandbox"), "ncaas-sandbox")
    loaded = load_blueprint(folder)
    record = AnalysisRecord.of(loaded, engine.build(loaded))
    provision(storage, sqs_client(settings), settings, record)
    yield loaded, record
    for container in engine.client.containers.list(
        all=True, filters={"label": f"ncaas.analysis={loaded.blueprint.analysis}"}
    ):
        container.remove(force=True)
    engine.client.images.remove(loaded.blueprint.image_tag, noprune=False)


def reachable_targets(engine: Engine, settings: Settings) -> list[tuple[str, int]]:
    """Where LocalStack answers from a container that has a network: host and bridge gateway."""
    assert settings.endpoint_url
    port = int(settings.endpoint_url.rsplit(":", 1)[1])
    gateway = engine.client.networks.get("bridge").attrs["IPAM"]["Config"][0]["Gateway"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("10.255.255.255", 1))  # no packet is sent: it only picks the host's address
        host_ip = s.getsockname()[0]
    return [("127.0.0.1", port), (gateway, port), (host_ip, port), ("1.1.1.1", 443)]


def claimed(data_key: str) -> DatasetStatus:
    """A dataset this test runs itself: claimed by a foreign host, so no dispatcher's sweep
    (the session's may be running) launches it as well."""
    return DatasetStatus(
        key=data_key, runner="docker:test", claimed_by="pytest-direct:1", claimed_at=utcnow()
    )


def run_directly(
    storage: Storage,
    engine: Engine,
    settings: Settings,
    record: AnalysisRecord,
    state_dir: Path,
    cfg: dict[str, Any],
) -> tuple[State, JobStatus, dict[str, Any]]:
    """One dataset through the real runner, in this process (whose environment the test sets)."""
    lab = Lab(storage, record.blueprint.analysis)
    data_key, config_key = lab.dataset(), lab.config(**cfg)
    name = data_key.rsplit("/", 1)[1]
    job = f"job_sandbox_{secrets.token_hex(3)}"
    status = JobStatus(
        job=job,
        analysis=record.blueprint.analysis,
        group="labA",
        submission="labA/submissions/direct_submit.json",
        configname=config_key,
        datasets={name: claimed(data_key)},
    )
    assert JobStore(storage, lab.bucket).create(status)
    task = DatasetTask(
        bucket=lab.bucket,
        group="labA",
        job=job,
        dataset=name,
        data_key=data_key,
        config_key=config_key,
        record=record,
        endpoint_url=settings.endpoint_url,
        region=settings.region,
    )
    runner_settings = Settings(endpoint_url=settings.endpoint_url, state_dir=state_dir)
    state = Runner(storage, engine, runner_settings).run(task, "docker:sandbox-test")
    final = lab.client.status("labA", job)
    prefix = JobPaths("labA", job).outputs(name)
    outputs = {o.key[len(prefix) :]: o for o in storage.list_objects(lab.bucket, prefix)}
    facts = json.loads(lab.text(prefix + "facts.json")) if "facts.json" in outputs else {}
    return state, final, {"facts": facts, "outputs": outputs}


@pytest.fixture
def planted_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """AWS credentials in the runner's environment and home, as on a developer's machine."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CANARY_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CANARY_SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", CANARY_SECRET)
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text(
        f"[default]\naws_access_key_id = {CANARY_KEY}\naws_secret_access_key = {CANARY_SECRET}\n"
    )
    monkeypatch.setenv("HOME", str(home))
    return [CANARY_KEY, CANARY_SECRET]


def test_hostile_analysis_reaches_nothing(
    sandbox: tuple[LoadedBlueprint, AnalysisRecord],
    storage: Storage,
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    planted_credentials: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, record = sandbox
    owners: dict[str, int] = {}
    upload_tree = storage.upload_tree

    def spy(folder: Path, bucket: str, prefix: str) -> int:  # who owns the outputs on upload
        owners.update({str(p.relative_to(folder)): p.lstat().st_uid for p in folder.rglob("*")})
        return upload_tree(folder, bucket, prefix)

    monkeypatch.setattr(storage, "upload_tree", spy)
    targets = reachable_targets(engine, settings)
    cfg = {"mode": "escape", "targets": targets, "canaries": planted_credentials}
    state, status, seen = run_directly(storage, engine, settings, record, tmp_path, cfg)
    facts = seen["facts"]
    assert state == State.SUCCEEDED, status.reason
    assert facts, "the hostile analysis wrote no facts.json"
    print(f"\nsandbox: fork {facts['fork']}; network {facts['network']}")  # figures (pytest -s)

    # Not root, no capabilities, no way to gain any.
    expected_uid = 65534 if os.getuid() == 0 else os.getuid()
    assert (facts["uid"], facts["gid"]) == (
        expected_uid,
        65534 if os.getuid() == 0 else os.getgid(),
    )
    assert 0 not in facts["groups"]
    caps = facts["status"]
    for field in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert caps[field] == "0000000000000000", (field, caps[field])
    assert caps["NoNewPrivs"] == "1"
    assert "PermissionError" in facts["setuid_root"]
    assert "PermissionError" in facts["chown_output_to_root"]

    # Inputs read-only (a read-only mount, and files the sandbox user does not own).
    refused = ("Read-only file system", "Permission denied")
    assert any(r in facts["write_input"] for r in refused), facts["write_input"]
    assert any(r in facts["create_in_input"] for r in refused), facts["create_in_input"]
    assert facts["mounts"] == {"/ncaas/input": "ro", "/ncaas/config": "ro", "/ncaas/output": "rw"}

    # No network: only loopback, nothing reachable, LocalStack included.
    assert facts["interfaces"] == ["lo"]
    assert set(facts["network"]) == {f"{h}:{p}" for h, p in targets}
    assert all(result != "ok" for result in facts["network"].values()), facts["network"]

    # No Docker socket, no AWS credentials (neither the runner's environment nor its files).
    assert facts["docker_socket"] == [] and facts["docker_socket_mounted"] == []
    assert facts["aws_env"] == [] and facts["canaries_in_env"] == [] and facts["aws_files"] == []
    assert facts["env"]["HOME"] == "/tmp"

    # Resource limits in force: memory, and a fork bomb stopped by the pids limit.
    assert facts["memory_max"] == str(MEMORY)
    limit = pids_limit(record.blueprint.resources.cpus)
    assert facts["pids_max"] == str(limit)
    assert limit - 16 <= facts["fork"]["started"] < limit, facts["fork"]
    assert "Resource temporarily unavailable" in facts["fork"]["stopped_by"]

    # Outputs: uploaded (a non-UTF-8 name kept with U+FFFD), symlinks never followed on the host,
    # handed back to the invoking user before upload.
    assert {"facts.json", "sub/written.txt", "bad-name-\ufffd.txt"} <= set(seen["outputs"])
    assert "leak" not in seen["outputs"]
    assert owners and all(uid == os.getuid() for uid in owners.values()), owners


def test_the_probe_can_see_a_network_when_the_blueprint_grants_one(
    sandbox: tuple[LoadedBlueprint, AnalysisRecord],
    storage: Storage,
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
) -> None:
    """Control: with run.network the same probe reaches LocalStack, so 'unreachable' is real."""
    _, record = sandbox
    run = record.blueprint.run.model_copy(update={"network": True})
    networked = record.model_copy(
        update={"blueprint": record.blueprint.model_copy(update={"run": run})}
    )
    targets = reachable_targets(engine, settings)[1:3]  # via the bridge gateway, the host's IP
    cfg = {"mode": "escape", "targets": targets}
    state, status, seen = run_directly(storage, engine, settings, networked, tmp_path, cfg)
    assert state == State.SUCCEEDED, status.reason
    assert "ok" in seen["facts"]["network"].values(), seen["facts"]["network"]
    assert seen["facts"]["interfaces"] != ["lo"]


def test_out_of_memory_is_reported_as_such(
    sandbox: tuple[LoadedBlueprint, AnalysisRecord], storage: Storage, dispatcher: int
) -> None:
    """Through the dispatcher, as a user submits it: allocating 2 GiB under a 512m limit."""
    lab = Lab(storage, sandbox[1].blueprint.analysis)
    status = lab.run(dataname=lab.dataset(), configname=lab.config(mode="oom", mb=2048))
    (ds,) = status.datasets.values()
    assert status.state == State.FAILED and ds.state == State.FAILED
    assert ds.reason and "out of memory" in ds.reason and "512m limit" in ds.reason, ds.reason
    assert ds.exit_code == 137
    assert "allocated without being stopped" not in lab.text(
        lab.paths(status.job).log(next(iter(status.datasets)))
    )
