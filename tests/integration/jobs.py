"""Helpers for integration tests: write what a user writes to S3, wait for what comes back."""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker.errors
import yaml
from waiting import wait_until  # tests/ is on sys.path: pytest's rootdir conftest

from ncaas_dev.analysis import AnalysisRecord
from ncaas_dev.aws import sqs_client
from ncaas_dev.blueprint import LoadedBlueprint, load_blueprint
from ncaas_dev.client import AnalysisClient, Submitted
from ncaas_dev.containers import Engine
from ncaas_dev.layout import JobPaths
from ncaas_dev.local.provision import provision
from ncaas_dev.settings import Settings
from ncaas_dev.status import JobStatus, State
from ncaas_dev.storage import Storage


@dataclass
class Lab:
    """A group of one analysis, driven through S3 only."""

    storage: Storage
    bucket: str
    group: str = "labA"

    @property
    def client(self) -> AnalysisClient:
        return AnalysisClient(self.storage, self.bucket)

    def put(self, folder: str, name: str, body: bytes) -> str:
        key = f"{self.group}/{folder}/{name}"
        self.storage.put_bytes(self.bucket, key, body)
        return key

    def config(self, **cfg: object) -> str:
        return self.put("configs", f"cfg-{secrets.token_hex(4)}.json", json.dumps(cfg).encode())

    def dataset(self, size: int = 1000) -> str:
        return self.put("inputs", f"rec-{secrets.token_hex(4)}.bin", secrets.token_bytes(size))

    def submit_raw(self, body: bytes, group: str | None = None) -> Submitted:
        key = f"{group or self.group}/submissions/{secrets.token_hex(6)}_submit.json"
        etag = self.storage.put_bytes(self.bucket, key, body)
        return Submitted(key, etag)

    def submit(self, **doc: object) -> Submitted:
        return self.submit_raw(json.dumps(doc).encode())

    def submit_datasets(self, count: int, **cfg: object) -> str:
        """Submit ``count`` fresh datasets as one job with config ``cfg``; return the job."""
        keys = [self.dataset() for _ in range(count)]
        return self.wait_job(self.submit(dataname=keys, configname=self.config(**cfg)))

    def wait_job(self, submitted: Submitted, timeout: float = 30) -> str:
        what = f"a job for {submitted.key}"
        return wait_until(lambda: self.client.job_of(submitted), timeout, what, interval=0.1)

    def wait_end(self, job: str, timeout: float = 120, group: str | None = None) -> JobStatus:
        group = group or self.group
        wait_until(lambda: self.client.finished(group, job), timeout, f"{job} ended", 0.2)
        return self.client.status(group, job)

    def text(self, key: str) -> str:
        return self.storage.get_bytes(self.bucket, key)[0].decode()

    def paths(self, job: str, group: str | None = None) -> JobPaths:
        return JobPaths(group or self.group, job)

    def run(self, timeout: float = 120, **doc: object) -> JobStatus:
        submitted = self.submit(**doc)
        return self.wait_end(self.wait_job(submitted), timeout=timeout)


def assert_no_dataset_left_open(status: JobStatus) -> None:
    """A rejected job's datasets end too, saying why: none stays queued (nothing ran)."""
    for ds in status.datasets.values():
        assert ds.state == State.REJECTED and ds.runner is None and ds.started is None, ds
        assert ds.reason == status.reason and ds.finished, ds


ROOT = Path(__file__).resolve().parents[2]
# The command installed with the Python running the tests (whatever venv that is).
NCAAS_DEV = Path(sys.executable).parent / "ncaas-dev"


def ncaas(
    args: list[str], env: dict[str, str], cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(NCAAS_DEV), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# Analyses this test session named: their images are the only ones it removes at the end (other
# sessions on the same engine build images of their own meanwhile; those are not ours).
SESSION_ANALYSES: set[str] = set()


def new_analysis(prefix: str) -> str:
    """A fresh analysis name (``{prefix}-{random}``), recorded as this session's."""
    name = f"{prefix}-{secrets.token_hex(4)}"
    SESSION_ANALYSES.add(name)
    return name


def pin_image(engine: Engine, tag: str) -> None:
    """Keep a fixture's image while the session needs it: a created (never started) container
    refers to it, so removing the tag without force fails. Other test sessions on the same
    engine, older ones among them, clean up images they think are theirs that way."""
    analysis = engine.client.images.get(tag).labels.get("ncaas.analysis", "")
    labels = {"ncaas.test": "pin", "ncaas.pin": tag, "ncaas.pin.analysis": analysis}
    engine.client.containers.create(tag, ["true"], network_mode="none", labels=labels)


def remove_image(engine: Engine, tag: str) -> None:
    """A fixture's image (and its pin), removed at teardown; already gone is as good."""
    for pin in engine.client.containers.list(all=True, filters={"label": f"ncaas.pin={tag}"}):
        pin.remove(force=True)
    with contextlib.suppress(docker.errors.ImageNotFound):
        engine.client.images.remove(tag, noprune=False)


@contextlib.contextmanager
def provisioned(
    engine: Engine, storage: Storage, settings: Settings, folder: Path
) -> Iterator[tuple[LoadedBlueprint, AnalysisRecord]]:
    """The blueprint in ``folder`` built, its image pinned, provisioned on the session's stack;
    at the end its containers (labelled with its analysis) and its image are removed. The one
    build-pin-provision-teardown every fixture of an analysis of its own uses."""
    loaded = load_blueprint(folder)
    record = AnalysisRecord.of(loaded, engine.build(loaded))
    pin_image(engine, loaded.blueprint.image_tag)
    try:
        provision(storage, sqs_client(settings), settings, record)
        yield loaded, record
    finally:
        label = f"ncaas.analysis={loaded.blueprint.analysis}"
        for container in engine.client.containers.list(all=True, filters={"label": label}):
            container.remove(force=True)
        remove_image(engine, loaded.blueprint.image_tag)


def copy_blueprint(source: Path, folder: Path, prefix: str, **sections: dict[str, object]) -> Path:
    """``source`` copied to ``folder`` as an analysis of its own (``{prefix}-{random}``), its
    blueprint's ``sections`` updated; the copy's folder."""
    shutil.copytree(source, folder, dirs_exist_ok=True)
    doc = yaml.safe_load((folder / "blueprint.yaml").read_text())
    doc["analysis"] = new_analysis(prefix)
    for section, values in sections.items():
        doc.setdefault(section, {}).update(values)
    (folder / "blueprint.yaml").write_text(yaml.safe_dump(doc))
    return folder
