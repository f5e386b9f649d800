"""Helpers for integration tests: write what a user writes to S3, wait for what comes back."""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import docker.errors
import yaml

from ncaas_dev.client import AnalysisClient, Submitted
from ncaas_dev.containers import Engine
from ncaas_dev.layout import JobPaths
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
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.client.job_of(submitted)
            if job:
                return job
            time.sleep(0.1)
        raise AssertionError(f"no job for {submitted.key} within {timeout} s")

    def wait_end(self, job: str, timeout: float = 120, group: str | None = None) -> JobStatus:
        group = group or self.group
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.client.finished(group, job):
                return self.client.status(group, job)
            time.sleep(0.2)
        raise AssertionError(f"{job} did not end within {timeout} s")

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
