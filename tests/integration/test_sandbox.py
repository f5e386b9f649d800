"""The analysis container is a sandbox: a hostile analysis tries every escape and reports back.

The hostile analysis (tests/fixtures/sandbox) runs through the real runner on the real Docker
engine against the session's LocalStack, with AWS credentials planted in the runner's own
environment and home. Every assertion reads what the analysis itself wrote to its outputs.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ncaas_dev.analysis import AnalysisRecord
from ncaas_dev.blueprint import LoadedBlueprint
from ncaas_dev.containers import Engine, pids_limit
from ncaas_dev.jobstore import JobStore
from ncaas_dev.launchers.base import DatasetTask
from ncaas_dev.layout import JobPaths
from ncaas_dev.runs.runner import Runner
from ncaas_dev.settings import Settings
from ncaas_dev.status import DatasetStatus, JobStatus, State, utcnow
from ncaas_dev.storage import Storage

from .jobs import Lab, copy_blueprint, provisioned

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
    with provisioned(engine, storage, settings, folder) as built:
        yield built


LISTENER_PORT = 8000
LISTENER = f"""
import socket
server = socket.create_server(("0.0.0.0", {LISTENER_PORT}))
print("listening", flush=True)
while True:
    conn, _ = server.accept()
    conn.close()
"""


@pytest.fixture(scope="module")
def test_network(engine: Engine) -> Iterator[tuple[str, tuple[str, int]]]:
    """A Docker network of this test's own, with a listener on it: (network name, address).

    Internal (no route off the machine), made and removed here; the listener runs from the
    local base image, and its address is read from its own inspect, not from the engine's
    defaults (an engine may leave the bridge's gateway out of its IPAM config).
    """
    name = f"ncaas-test-net-{secrets.token_hex(4)}"
    network = engine.client.networks.create(
        name, driver="bridge", internal=True, labels={"ncaas.test": "sandbox"}
    )
    listener = None
    try:
        listener = engine.client.containers.run(
            "ncaas/base:bookworm",
            ["python3", "-c", LISTENER],
            detach=True,
            network=name,
            user="65534:65534",
            cap_drop=["ALL"],
            labels={"ncaas.test": "sandbox"},
        )
        deadline = time.monotonic() + 60
        while b"listening" not in listener.logs():
            listener.reload()
            assert listener.status in ("created", "running"), listener.logs().decode()
            assert time.monotonic() < deadline, "the test's listener did not start"
            time.sleep(0.1)
        listener.reload()
        ip = listener.attrs["NetworkSettings"]["Networks"][name]["IPAddress"]
        assert ip, listener.attrs["NetworkSettings"]
        yield name, (ip, LISTENER_PORT)
    finally:
        if listener is not None:
            listener.remove(force=True)
        network.remove()


def localstack_address(settings: Settings) -> tuple[str, int]:
    """The session's LocalStack, on the host's loopback."""
    assert settings.endpoint_url
    return "127.0.0.1", int(settings.endpoint_url.rsplit(":", 1)[1])


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
    network: str | None = None,
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
    runner_settings = Settings(
        endpoint_url=settings.endpoint_url, state_dir=state_dir, analysis_network=network
    )
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
    test_network: tuple[str, tuple[str, int]],
) -> None:
    _, record = sandbox
    owners: dict[str, int] = {}
    upload_tree = storage.upload_tree

    def spy(folder: Path, bucket: str, prefix: str) -> int:  # who owns the outputs on upload
        owners.update({str(p.relative_to(folder)): p.lstat().st_uid for p in folder.rglob("*")})
        return upload_tree(folder, bucket, prefix)

    monkeypatch.setattr(storage, "upload_tree", spy)
    # Only loopback and the test's own listener: were the isolation broken, nothing would
    # leave the machine. The network is offered to the analysis; run.network false refuses it.
    network, listener = test_network
    targets = [localstack_address(settings), listener]
    cfg = {"mode": "escape", "targets": targets, "canaries": planted_credentials}
    state, status, seen = run_directly(storage, engine, settings, record, tmp_path, cfg, network)
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
    test_network: tuple[str, tuple[str, int]],
) -> None:
    """Control: with run.network the same probe reaches the listener, so 'unreachable' is real."""
    _, record = sandbox
    run = record.blueprint.run.model_copy(update={"network": True})
    networked = record.model_copy(
        update={"blueprint": record.blueprint.model_copy(update={"run": run})}
    )
    network, listener = test_network
    cfg = {"mode": "escape", "targets": [listener]}
    state, status, seen = run_directly(storage, engine, settings, networked, tmp_path, cfg, network)
    assert state == State.SUCCEEDED, status.reason
    assert seen["facts"]["network"] == {"{}:{}".format(*listener): "ok"}, seen["facts"]["network"]
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
