"""The Batch tests' Batch: moto's server, started the way `up --launcher batch` starts it,
beside the session's LocalStack; each job runs as a real container on the local Docker.

The session's stack serves every analysis with one dispatcher; for these tests it runs the
batch launcher, and afterwards the launcher it ran before.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from ncaas_dev.blueprint import LoadedBlueprint
from ncaas_dev.local.batchserver import batch_endpoint, start_batch_server, stop_batch_containers
from ncaas_dev.local.stack import PidFile, start_dispatcher
from ncaas_dev.settings import Settings
from ncaas_dev.storage import Storage

from ..jobs import Lab
from ..test_analysis_outcomes import variant_lab

# Quick passes for tests: Batch is asked every half second, a vanished job is lost after 20 s,
# a 10 s staging margin past run.timeout.
DISPATCHER_ENV = {
    "NCAAS_BATCH_POLL_SECONDS": "0.5",
    "NCAAS_BATCH_LOST_GRACE_SECONDS": "20",
    "NCAAS_BATCH_STAGING_MARGIN_S": "10",
}


def switch_dispatcher(settings: Settings, launcher: str) -> None:
    PidFile(settings.state_dir, "dispatcher").stop()
    start_dispatcher(settings, launcher)


@pytest.fixture(scope="module")
def batch_server(settings: Settings) -> Iterator[str]:
    info = start_batch_server(settings.state_dir)
    assert info.running and info.detail["endpoint"].startswith("http://127.0.0.1:")
    yield info.detail["endpoint"]
    # As `down` does: the server, then the job containers it no longer removes.
    PidFile(settings.state_dir, "batch").stop()
    stop_batch_containers(settings.state_dir)


@pytest.fixture(scope="module")
def batch_dispatcher(settings: Settings, batch_server: str) -> Iterator[None]:
    """The session stack's dispatcher on the batch launcher for the module's tests."""
    before = PidFile(settings.state_dir, "dispatcher").read()
    saved = {k: os.environ.get(k) for k in DISPATCHER_ENV}
    os.environ.update(DISPATCHER_ENV)
    switch_dispatcher(settings, "batch")
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    PidFile(settings.state_dir, "dispatcher").stop()
    if before.running:
        start_dispatcher(settings, str(before.detail.get("launcher", "docker")))


MakeLab = Callable[..., Lab]


@pytest.fixture
def batch_lab(
    storage: Storage, settings: Settings, probe: LoadedBlueprint, batch_dispatcher: None
) -> MakeLab:
    """The probe analysis changed by ``updates``, as an analysis of the test's own (its own
    Batch queue), served by the batch dispatcher."""

    def make(**updates: object) -> Lab:
        suffix = f"b{time.monotonic_ns() % 10**8}"
        return variant_lab(storage, settings, probe, suffix, **updates)

    return make


@pytest.fixture(scope="module")
def batch(settings: Settings, batch_server: str) -> Any:
    """A Batch client of the local server: what the tests see of Batch."""
    assert batch_endpoint(settings.state_dir) == batch_server
    return boto3.client(
        "batch",
        endpoint_url=batch_server,
        region_name=settings.region,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def jobs_of(batch: Any, analysis: str) -> list[dict[str, Any]]:
    """Every Batch job of the analysis's queue, oldest first (none before its queue exists)."""
    if not batch.describe_job_queues(jobQueues=[f"ncaas-{analysis}"])["jobQueues"]:
        return []
    found = batch.list_jobs(
        jobQueue=f"ncaas-{analysis}", filters=[{"name": "JOB_NAME", "values": ["ncaas-*"]}]
    )["jobSummaryList"]
    return sorted(found, key=lambda j: j["createdAt"])
