"""Cancelling a job by a file in S3, on the Docker launcher: the work stops within the bound,
the ending is complete (state, reason, partial outputs, end.txt last, the ledger), and a
request that must change nothing changes nothing. The CLI, API and browser write the same
file (test_cancel_clients.py); EC2 and SLURM stop their own way (test_cancel_launchers.py)."""

from __future__ import annotations

import json
import secrets
import time

import pytest

from ncaas_dev.analysis import AnalysisRecord
from ncaas_dev.aws import sqs_client
from ncaas_dev.blueprint import LoadedBlueprint
from ncaas_dev.budget import Budget
from ncaas_dev.compat import neurocaas
from ncaas_dev.containers import Engine
from ncaas_dev.jobstore import JobStore
from ncaas_dev.local.provision import provision
from ncaas_dev.local.stack import start_dispatcher
from ncaas_dev.settings import Settings
from ncaas_dev.status import JobStatus, State, utcnow
from ncaas_dev.storage import Storage

from .jobs import Lab
from .test_analysis_outcomes import variant_lab
from .test_limits import analysis_containers, launches
from .test_restart import kill_dispatcher, restarts_dispatcher  # noqa: F401 (a fixture)

pytestmark = pytest.mark.integration
# The bound: past 10 s from the cancel file to the container gone is a failure
# (the 2 s target is a benchmark figure: benchmarks/bench_cancel.py).
STOP_BOUND_S = 10.0
LONG = {"lines": 1, "sleep": 120}


def cancel_file(lab: Lab, job: str, group: str | None = None, **extra: object) -> str:
    key = f"{group or lab.group}/submissions/{secrets.token_hex(6)}_cancel.json"
    lab.storage.put_json(lab.bucket, key, {"job": job, **extra})
    return key


def wait_running(lab: Lab, engine: Engine, job: str, count: int = 1, timeout: float = 60) -> None:
    """Until ``count`` datasets of the job run and their analysis containers are up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = [d.state for d in lab.client.status(lab.group, job).datasets.values()]
        if states.count(State.RUNNING) >= count and len(running(engine, lab, job)) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"{job}: {count} dataset(s) not running within {timeout} s")


def running(engine: Engine, lab: Lab, job: str) -> list[object]:
    return [
        c
        for c in engine.client.containers.list(filters={"label": f"ncaas.job={job}"})
        if c.labels.get("ncaas.analysis") == lab.bucket
    ]


def seconds_until_gone(engine: Engine, lab: Lab, job: str, timeout: float = 30) -> float:
    start = time.monotonic()
    while running(engine, lab, job):
        assert time.monotonic() - start < timeout, f"{job}: containers still run after {timeout} s"
        time.sleep(0.05)
    return time.monotonic() - start


def cancel_one_by_alice(lab: Lab, engine: Engine, job: str) -> tuple[JobStatus, str]:
    """Cancel a running one-dataset job by a file naming alice: its analysis is gone within the
    bound, and the job and dataset end cancelled by alice. Returns the final status and the
    dataset's name (the other launchers' tests)."""
    cancel_file(lab, job, by="alice")
    assert seconds_until_gone(engine, lab, job) <= STOP_BOUND_S
    final = lab.wait_end(job, timeout=60)
    (name, ds), = final.datasets.items()  # fmt: skip
    assert final.state == State.CANCELLED and ds.state == State.CANCELLED, final
    assert (ds.reason or "").startswith("cancelled by alice at "), ds.reason
    return final, name


def cancellations(status: JobStatus) -> list[str]:
    return [e.message for e in status.events if e.message.startswith("cancelled by")]


@pytest.fixture(name="lab")
def lab_fixture(
    storage: Storage, settings: Settings, probe: LoadedBlueprint, dispatcher: int
) -> Lab:
    """A variant of the probe of this test's own, whose datasets may run for minutes."""
    suffix = "x" + secrets.token_hex(2)
    return variant_lab(storage, settings, probe, suffix, run={"timeout": 300})


def test_a_cancel_file_stops_the_container_and_ends_the_job_completely(
    lab: Lab, engine: Engine
) -> None:
    job = lab.wait_job(lab.submit(dataname=lab.dataset(), configname=lab.config(**LONG)))
    wait_running(lab, engine, job)
    key = cancel_file(lab, job)
    assert seconds_until_gone(engine, lab, job) <= STOP_BOUND_S
    final = lab.wait_end(job, timeout=30)
    name, ds = next(iter(final.datasets.items()))
    assert final.state == State.CANCELLED and ds.state == State.CANCELLED, final
    assert ds.reason is not None and ds.reason.startswith(f"cancelled by file {key} at 20"), ds
    assert final.reason == f"{name}: {ds.reason}"
    # The partial output (the probe writes facts.json first) was uploaded, before end.txt.
    paths = lab.paths(job)
    facts = lab.storage.head(lab.bucket, paths.outputs(name) + "facts.json")
    end = lab.storage.head(lab.bucket, paths.end)
    assert facts is not None and end is not None
    assert "cancelled" in lab.text(paths.end)
    assert "line 0" in lab.text(paths.log(name))
    assert len(cancellations(final)) == 1
    # The ledger: no reservation left for it, its run charged once.
    ledger = Budget(lab.storage, lab.bucket).read(lab.group)
    assert f"{job}/{name}" not in ledger.reserved
    assert ledger.charges.get(f"{job}/{name}") == ds.cost_usd
    assert analysis_containers(engine, lab.bucket) == []


def test_cancel_of_some_datasets_and_a_repeated_request_cancel_once(
    lab: Lab, engine: Engine
) -> None:
    keys = [lab.dataset() for _ in range(3)]
    names = [k.rsplit("/", 1)[1] for k in keys]
    job = lab.wait_job(lab.submit(dataname=keys, configname=lab.config(**LONG)))
    wait_running(lab, engine, job, count=3)
    request = {"datasets": names[:2], "by": "alice"}
    first = cancel_file(lab, job, **request)
    lab.storage.put_json(lab.bucket, first, {"job": job, **request})  # delivered again
    cancel_file(lab, job, **request)  # and the same request in a second file
    deadline = time.monotonic() + 30
    while True:  # their runners record the end once the partial outputs are up
        status = lab.client.status(lab.group, job)
        if [status.datasets[n].state for n in names[:2]] == [State.CANCELLED] * 2:
            break
        assert time.monotonic() < deadline, f"the two datasets were not cancelled: {status}"
        time.sleep(0.1)
    assert len(running(engine, lab, job)) == 1
    assert status.datasets[names[2]].state == State.RUNNING, "an uncancelled dataset stopped"
    assert not lab.client.finished(lab.group, job)
    cancel_file(lab, job, datasets=[names[2]])  # the rest
    final = lab.wait_end(job, timeout=30)
    assert final.state == State.CANCELLED
    assert all(ds.state == State.CANCELLED for ds in final.datasets.values())
    assert all(launches(final, n) == 1 for n in names)
    assert final.datasets[names[0]].reason == final.datasets[names[1]].reason
    assert (final.datasets[names[0]].reason or "").startswith("cancelled by alice at ")
    assert len(cancellations(final)) == 2  # the first request, then the last; no repeat
    ledger = Budget(lab.storage, lab.bucket).read(lab.group)
    assert not [k for k in ledger.reserved if k.startswith(job)]
    assert sorted(k for k in ledger.charges if k.startswith(job)) == sorted(
        f"{job}/{n}" for n in names
    )


def test_requests_that_must_change_nothing_change_nothing(
    lab: Lab, engine: Engine, settings: Settings
) -> None:
    """Another group's request, a job the group does not have, a bad request, an ended job."""
    job = lab.wait_job(lab.submit(dataname=lab.dataset(), configname=lab.config(lines=1, sleep=4)))
    wait_running(lab, engine, job)
    cross = cancel_file(lab, job, group="labB")
    unknown = cancel_file(lab, "job_nobody_has")
    bad = f"{lab.group}/submissions/{secrets.token_hex(6)}_cancel.json"
    lab.storage.put_bytes(lab.bucket, bad, b"not json")
    final = lab.wait_end(job, timeout=60)
    assert final.state == State.SUCCEEDED, final
    assert cancellations(final) == []
    log = settings.state_dir / "dispatcher.log"
    deadline = time.monotonic() + 10
    wanted = (
        f"{cross} changes nothing: group labB has no job {job}",
        f"{unknown} changes nothing: group {lab.group} has no job job_nobody_has",
        f"{bad} changes nothing: bad request: not JSON",
    )
    while not all(w in log.read_text(errors="replace") for w in wanted):
        assert time.monotonic() < deadline, f"the dispatcher's log does not say why: {wanted}"
        time.sleep(0.1)
    # A job that already ended: status.json is not written again.
    before = lab.storage.head(lab.bucket, lab.paths(job).status)
    late = cancel_file(lab, job)
    deadline = time.monotonic() + 10
    while f"{late} changes nothing: job {job} already ended" not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, "the late request was not answered"
        time.sleep(0.1)
    assert lab.storage.head(lab.bucket, lab.paths(job).status) == before


def test_a_dispatcher_killed_between_request_and_stop_ends_the_job_once(
    lab: Lab,
    engine: Engine,
    settings: Settings,
    restarts_dispatcher: None,  # noqa: F811
) -> None:
    """The dispatcher dies right after marking the dataset in status.json, before telling the
    launcher (the record it leaves is written here as it writes it): the next dispatcher's
    start-up sweep stops the work, and the dataset ends cancelled once."""
    job = lab.wait_job(lab.submit(dataname=lab.dataset(), configname=lab.config(**LONG)))
    wait_running(lab, engine, job)
    kill_dispatcher(settings)
    from ncaas_dev.dispatch.cancel import CancelRequest, mark

    request = CancelRequest(lab.group, job, None, "alice")
    JobStore(lab.storage, lab.bucket).update(lab.group, job, lambda s: mark(s, request, utcnow()))
    assert running(engine, lab, job), "nothing stopped it yet: the dispatcher is dead"
    start_dispatcher(settings, "docker")
    assert seconds_until_gone(engine, lab, job, timeout=60) <= 60
    final = lab.wait_end(job, timeout=30)
    name, ds = next(iter(final.datasets.items()))
    assert ds.state == State.CANCELLED and (ds.reason or "").startswith("cancelled by alice")
    assert len(cancellations(final)) == 1 and launches(final, name) == 1
    assert lab.storage.head(lab.bucket, lab.paths(job).outputs(name) + "facts.json")


def test_a_neurocaas_job_is_cancelled_the_same_way(
    storage: Storage, settings: Settings, probe: LoadedBlueprint, engine: Engine, dispatcher: int
) -> None:
    bp = probe.blueprint
    variant = bp.model_copy(
        update={
            "analysis": f"{bp.analysis}-nc{secrets.token_hex(2)}",
            "compat": "neurocaas",
            "run": bp.run.model_copy(update={"timeout": 300}),
        }
    )
    record = AnalysisRecord(blueprint=variant, content_hash=probe.content_hash, image=bp.image_tag)
    provision(storage, sqs_client(settings), settings, record)
    lab = Lab(storage, variant.analysis)
    job = lab.wait_job(lab.submit(dataname=lab.dataset(), configname=lab.config(**LONG)))
    assert job.startswith("job__")
    wait_running(lab, engine, job)
    cancel_file(lab, job)
    final = lab.wait_end(job, timeout=30)
    assert final.state == State.CANCELLED
    name = next(iter(final.datasets))
    doc = json.loads(lab.text(lab.paths(job).dataset_status(name)))
    assert doc["status"] == "FAILED" and doc["reason"].startswith("cancelled by file "), doc
    assert lab.text(lab.paths(job).end) == neurocaas.END_MARKER + "\n"
