"""The SLURM tests' cluster: the real single-node SLURM that `make test`'s set-up starts
(scripts/ensure-slurm.sh). A cluster that is not up is a test FAILURE, never a skip.

The session's stack serves every analysis with one dispatcher; for these tests it runs the
SLURM launcher, and afterwards the launcher it ran before.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest

from ncaas_dev.blueprint import LoadedBlueprint
from ncaas_dev.checks.slurm import USABLE_NODE_STATES, node_states
from ncaas_dev.errors import NcaasError
from ncaas_dev.local.stack import PidFile, start_dispatcher
from ncaas_dev.settings import Settings
from ncaas_dev.storage import Storage

from ..jobs import Lab
from ..test_analysis_outcomes import variant_lab

# Quick passes for tests: SLURM is asked every second, a vanished job is lost after 20 s; a
# 10 s staging margin and SLURM's warning 45 s ahead of the time limit (a minute at least).
DISPATCHER_ENV = {
    "NCAAS_SLURM_POLL_SECONDS": "1",
    "NCAAS_SLURM_LOST_GRACE_SECONDS": "20",
    "NCAAS_SLURM_STAGING_MARGIN_S": "10",
    "NCAAS_SLURM_SIGNAL_LEAD_S": "45",
}


@pytest.fixture(scope="session")
def slurm_node() -> str:
    """The cluster's one node, usable; fails the test when SLURM is not up."""
    try:
        states = node_states()
    except (NcaasError, OSError) as e:
        pytest.fail(f"SLURM is not running: {e}; run `make slurm` (scripts/ensure-slurm.sh)")
    usable = [n for n, s in states.items() if s.rstrip("*~#!%$@^-") in USABLE_NODE_STATES]
    if not usable:
        pytest.fail(f"no usable SLURM node ({states}); run `make slurm`")
    return usable[0]


def switch_dispatcher(settings: Settings, launcher: str) -> None:
    PidFile(settings.state_dir, "dispatcher").stop()
    start_dispatcher(settings, launcher)


@pytest.fixture(scope="module")
def slurm_dispatcher(settings: Settings, slurm_node: str) -> Iterator[None]:
    """The session stack's dispatcher on the SLURM launcher for the module's tests."""
    before = PidFile(settings.state_dir, "dispatcher").read()
    saved = {k: os.environ.get(k) for k in DISPATCHER_ENV}
    os.environ.update(DISPATCHER_ENV)
    switch_dispatcher(settings, "slurm")
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
def slurm_lab(
    storage: Storage, settings: Settings, probe: LoadedBlueprint, slurm_dispatcher: None
) -> MakeLab:
    """Makes the probe analysis, changed by ``updates`` (blueprint sections), an analysis of
    the test's own (its SLURM jobs are told apart by name), served by the SLURM dispatcher."""

    def make(**updates: object) -> Lab:
        suffix = f"s{time.monotonic_ns() % 10**8}"
        return variant_lab(storage, settings, probe, suffix, **updates)

    return make


def squeue(*args: str) -> list[dict[str, str]]:
    """SLURM's own view of every job it remembers (MinJobAge: an hour)."""
    fields = ("id", "name", "state", "reason", "comment")
    out = subprocess.run(
        ["squeue", "--states=all", "-h", "-O", "JobID:|,Name:|,State:|,Reason:|,Comment:", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [dict(zip(fields, line.split("|", 4), strict=True)) for line in out.splitlines()]


def jobs_of(analysis: str) -> list[dict[str, str]]:
    return [j for j in squeue() if f'"bucket":"{analysis}"' in j["comment"]]


def scontrol(*args: str) -> None:
    subprocess.run(["scontrol", *args], check=True, capture_output=True, text=True)
