"""How an analysis ends is recorded honestly, with its log and partial outputs kept."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from ncaas_dev.analysis import AnalysisRecord
from ncaas_dev.aws import sqs_client
from ncaas_dev.blueprint import LoadedBlueprint
from ncaas_dev.local.provision import provision
from ncaas_dev.local.stack import PidFile, start_dispatcher
from ncaas_dev.settings import Settings
from ncaas_dev.status import State
from ncaas_dev.storage import Storage

from .jobs import Lab

pytestmark = pytest.mark.integration


@pytest.fixture
def lab(storage: Storage, probe: LoadedBlueprint, dispatcher: int) -> Lab:
    return Lab(storage, probe.blueprint.analysis)


def test_success_follows_the_container_contract(lab: Lab) -> None:
    data = lab.dataset(size=4321)
    status = lab.run(dataname=data, configname=lab.config(lines=2))
    name = data.rsplit("/", 1)[1]
    paths = lab.paths(status.job)
    assert status.state == State.SUCCEEDED and status.reason is None
    ds = status.datasets[name]
    assert ds.exit_code == 0 and ds.runner and ds.runner.startswith("docker:")
    facts = json.loads(lab.text(paths.outputs(name) + "facts.json"))
    env = facts["env"]
    assert env["NCAAS_DATA"] == f"/ncaas/input/{name}"
    assert env["NCAAS_CONFIG"].startswith("/ncaas/config/cfg-")
    assert env["NCAAS_OUTPUT"] == "/ncaas/output"
    assert env["NCAAS_JOB"] == status.job  # run.env cannot override the contract's variables
    assert (env["NCAAS_DATASET"], env["NCAAS_GROUP"]) == (name, "labA")
    assert env["NCAAS_ANALYSIS"] == lab.bucket and env["EXTRA"] == "yes"
    assert facts["data_bytes"] == 4321
    assert facts["input_writable"] is False
    assert facts["aws_keys"] == []
    log = lab.text(paths.log(name))
    assert "line 0" in log and "line 1" in log and "finished" in log
    assert lab.text(paths.outputs(name) + "done.txt") == "done\n"
    certificate = lab.text(paths.certificate)
    assert f"DATANAME: {name} | STATUS: succeeded | TIME: " in certificate
    assert "LAST OUTPUT: finished" in certificate
    assert status.provenance["image_id"].startswith("sha256:")
    assert status.provenance["inputs"][data]
    assert status.provenance["launcher"] == "docker"


def test_nonzero_exit_fails_and_keeps_log_and_partial_outputs(lab: Lab) -> None:
    data = lab.dataset()
    status = lab.run(dataname=data, configname=lab.config(exit=3))
    name = data.rsplit("/", 1)[1]
    assert status.state == State.FAILED
    assert status.datasets[name].exit_code == 3
    assert "exited with code 3" in (status.reason or "")
    assert "finished" in lab.text(lab.paths(status.job).log(name))
    assert lab.text(lab.paths(status.job).outputs(name) + "done.txt") == "done\n"
    assert "failed" in lab.text(lab.paths(status.job).end)


def test_out_of_memory_is_reported_as_such(lab: Lab) -> None:
    status = lab.run(dataname=lab.dataset(), configname=lab.config(alloc_mb=600))
    assert status.state == State.FAILED
    assert "out of memory" in (status.reason or "") and "256m" in (status.reason or "")


def test_network_is_off_unless_the_blueprint_asks(lab: Lab) -> None:
    data = lab.dataset()
    status = lab.run(dataname=data, configname=lab.config(probe_network=True))
    facts = json.loads(
        lab.text(lab.paths(status.job).outputs(data.rsplit("/", 1)[1]) + "facts.json")
    )
    assert facts["network"] is not True


def test_many_datasets_one_job_folder(lab: Lab) -> None:
    keys = [lab.dataset() for _ in range(3)]
    status = lab.run(dataname=keys, configname=lab.config(lines=1))
    assert status.state == State.SUCCEEDED
    assert sorted(status.datasets) == sorted(k.rsplit("/", 1)[1] for k in keys)
    for key in keys:
        name = key.rsplit("/", 1)[1]
        assert "line 0" in lab.text(lab.paths(status.job).log(name))


def test_log_streams_while_the_analysis_runs(lab: Lab) -> None:
    data = lab.dataset()
    submitted = lab.submit(dataname=data, configname=lab.config(lines=30, line_interval=0.2))
    job = lab.wait_job(submitted)
    name = data.rsplit("/", 1)[1]
    seen_running_with_log = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not lab.client.finished("labA", job):
        state = lab.client.status("labA", job).datasets[name].state
        log = lab.client.log_since("labA", job, name, 0)
        if state == State.RUNNING and b"line 1" in log:
            seen_running_with_log = True
            break
        time.sleep(0.2)
    assert seen_running_with_log
    assert lab.wait_end(job).state == State.SUCCEEDED


def variant_lab(
    storage: Storage, settings: Settings, probe: LoadedBlueprint, suffix: str, **updates: object
) -> Lab:
    """The probe's image provisioned as another analysis whose blueprint differs by ``updates``."""
    bp = probe.blueprint
    changed = {k: getattr(bp, k).model_copy(update=v) for k, v in updates.items()}
    variant = bp.model_copy(update={"analysis": f"{bp.analysis}-{suffix}", **changed})
    record = AnalysisRecord(blueprint=variant, content_hash=probe.content_hash, image=bp.image_tag)
    provision(storage, sqs_client(settings), settings, record)
    return Lab(storage, variant.analysis)


def test_timeout_kills_and_reports_timed_out(
    storage: Storage, settings: Settings, probe: LoadedBlueprint, dispatcher: int
) -> None:
    lab = variant_lab(storage, settings, probe, "t", run={"timeout": 2})
    status = lab.run(dataname=lab.dataset(), configname=lab.config(lines=1, sleep=30))
    assert status.state == State.TIMED_OUT
    assert "killed at the timeout" in (status.reason or "") and "2 s" in (status.reason or "")
    name = next(iter(status.datasets))
    assert "line 0" in lab.text(lab.paths(status.job).log(name))


def test_concurrency_cap_holds_and_waiting_datasets_say_so(
    storage: Storage, settings: Settings, probe: LoadedBlueprint, dispatcher: int
) -> None:
    lab = variant_lab(storage, settings, probe, "c", limits={"max_concurrent_jobs": 2})
    job = lab.submit_datasets(5, lines=1, sleep=1.5)
    most_running, saw_waiting_note = 0, False
    while not lab.client.finished("labA", job):
        status = lab.client.status("labA", job)
        running = sum(d.state == State.RUNNING for d in status.datasets.values())
        most_running = max(most_running, running)
        saw_waiting_note |= "WAITING: waiting for a free slot" in lab.text(
            lab.paths(job).certificate
        )
        time.sleep(0.1)
    final = lab.client.status("labA", job)
    assert final.state == State.SUCCEEDED and len(final.datasets) == 5
    assert most_running == 2
    assert saw_waiting_note


def test_datasets_queued_when_the_dispatcher_is_killed_still_run_once(
    storage: Storage, settings: Settings, probe: LoadedBlueprint, dispatcher: int
) -> None:
    lab = variant_lab(storage, settings, probe, "k", limits={"max_concurrent_jobs": 1})
    job = lab.submit_datasets(3, lines=1, sleep=2)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        states = [d.state for d in lab.client.status("labA", job).datasets.values()]
        if State.RUNNING in states and states.count(State.QUEUED) == 2:
            break
        time.sleep(0.1)
    pidfile = PidFile(settings.state_dir, "dispatcher")
    os.kill(dispatcher_pid(pidfile), signal.SIGKILL)
    deadline = time.monotonic() + 10  # a fixed pause held only on an idle machine
    while pidfile.read().running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pidfile.read().running
    start_dispatcher(settings, "docker")
    final = lab.wait_end(job, timeout=120)
    assert final.state == State.SUCCEEDED
    assert all(d.exit_code == 0 for d in final.datasets.values())
    launches = [e.message for e in final.events if "analysis started on" in e.message]
    assert len(launches) == 3  # each dataset ran exactly once


def dispatcher_pid(pidfile: PidFile) -> int:
    pid = pidfile.read().pid
    assert pid is not None
    return pid
