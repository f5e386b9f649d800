"""A dispatcher that dies, restarts, or races another loses nothing and doubles nothing.

Some tests reproduce, byte for byte, the records a dispatcher SIGKILLed at an exact moment
leaves behind (a claim naming a dead process), because the moment itself is microseconds
wide; the rest kill real processes at real moments.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from waiting import wait_until  # tests/ is on sys.path: pytest's rootdir conftest

from ncaas_dev.aws import sqs_client
from ncaas_dev.blueprint import LoadedBlueprint
from ncaas_dev.client import Submitted
from ncaas_dev.containers import Engine
from ncaas_dev.jobstore import JobStore
from ncaas_dev.launchers.docker import process_start_ticks
from ncaas_dev.layout import claim_key
from ncaas_dev.local.provision import QUEUE_NAME
from ncaas_dev.local.stack import PidFile, start_dispatcher
from ncaas_dev.settings import Settings
from ncaas_dev.status import DatasetStatus, JobStatus, State
from ncaas_dev.storage import Storage

from .jobs import Lab, assert_no_dataset_left_open
from .test_analysis_outcomes import variant_lab
from .test_limits import analysis_containers, launches, max_overlap

pytestmark = pytest.mark.integration


def kill_dispatcher(settings: Settings) -> None:
    pidfile = PidFile(settings.state_dir, "dispatcher")
    pid = pidfile.read().pid
    assert pid is not None, "the session's dispatcher is not running"
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while pidfile.read().running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pidfile.read().running


@pytest.fixture
def restarts_dispatcher(settings: Settings, dispatcher: int) -> Iterator[None]:
    """The test kills the session's dispatcher; whatever happens, one runs afterwards."""
    yield
    start_dispatcher(settings, "docker")


def dead_owner() -> str:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return f"{socket.gethostname()}:{process.pid}"


def seconds_ago(seconds: float) -> str:
    stamp = datetime.now(UTC) - timedelta(seconds=seconds)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def jobs_by_submission(lab: Lab) -> Counter[str]:
    return Counter(s.submission for s in lab.client.jobs(lab.group))


def assert_nothing_left_running(lab: Lab, engine: Engine, *state_dirs: Path) -> None:
    deadline = time.monotonic() + 10  # a runner removes its container just after end.txt
    while analysis_containers(engine, lab.bucket) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert analysis_containers(engine, lab.bucket) == []
    for state_dir in state_dirs:  # no runner process of this analysis is alive
        for record in (state_dir / "runners" / lab.bucket).glob("**/*.runner.json"):
            try:
                doc = json.loads(record.read_text())
            except FileNotFoundError:  # removed since the listing: its runner has ended
                continue
            while process_start_ticks(doc["pid"]) == doc["ticks"]:
                assert time.monotonic() < deadline, f"runner {doc['pid']} still runs"
                time.sleep(0.2)


def assert_a_killed_dispatcher_loses_nothing(
    lab: Lab,
    engine: Engine,
    state_dir: Path,
    kill: Callable[[], None],
    restart: Callable[[], None],
    sleep: float,
    wait: float = 30,
    end_wait: float = 120,
) -> None:
    """At cap 2 (``lab``'s limit), two datasets running and more queued behind them: the
    dispatcher killed, three submissions written while none runs, the dispatcher started
    again. Every dataset then succeeds, launched once; the cap held across the restart; one job
    per submission; nothing left running. (Also the compose stack's `docker kill` test.)"""
    config = lab.config(lines=1, sleep=sleep)
    before = [lab.submit(dataname=[lab.dataset(), lab.dataset()], configname=config)]
    before += [lab.submit(dataname=lab.dataset(), configname=config) for _ in range(3)]
    jobs = [lab.wait_job(s, timeout=wait) for s in before]
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        states = [d.state for j in jobs for d in lab.client.status("labA", j).datasets.values()]
        if states.count(State.RUNNING) == 2:
            break
        time.sleep(0.05)
    kill()
    # Written while no dispatcher runs: their events wait in the queue.
    after = [lab.submit(dataname=lab.dataset(), configname=config) for _ in range(3)]
    restart()
    finals = [lab.wait_end(lab.wait_job(s, timeout=wait), timeout=end_wait) for s in before + after]
    assert [f.state for f in finals] == [State.SUCCEEDED] * 7
    assert all(launches(f, name) == 1 for f in finals for name in f.datasets)
    assert max_overlap(finals) == 2  # the runners left running were counted after the restart
    counts = jobs_by_submission(lab)
    assert sorted(counts) == sorted(s.key for s in before + after)
    assert set(counts.values()) == {1}
    assert_nothing_left_running(lab, engine, state_dir)


def test_sigkill_while_jobs_run_and_submissions_wait(
    storage: Storage,
    settings: Settings,
    probe: LoadedBlueprint,
    engine: Engine,
    restarts_dispatcher: None,
) -> None:
    lab = variant_lab(storage, settings, probe, "r", limits={"max_concurrent_jobs": 2})
    assert_a_killed_dispatcher_loses_nothing(
        lab,
        engine,
        settings.state_dir,
        kill=lambda: kill_dispatcher(settings),
        restart=lambda: start_dispatcher(settings, "docker"),
        sleep=1.5,
    )


def restart_and_wait_for_the_sweep(settings: Settings) -> None:
    """SIGKILL the dispatcher, start it again, return once its start-up sweep is done."""
    log = settings.state_dir / "dispatcher.log"
    done_before = log.read_text(errors="replace").count("queued dataset(s) recovered")
    kill_dispatcher(settings)
    start_dispatcher(settings, "docker")
    deadline = time.monotonic() + 30
    while log.read_text(errors="replace").count("queued dataset(s) recovered") == done_before:
        assert time.monotonic() < deadline, "the restarted dispatcher never finished its sweep"
        time.sleep(0.1)


def abandoned_launch(storage: Storage, lab: Lab, job: str, owner: str) -> tuple[JobStatus, str]:
    """A one-dataset job whose dataset ``owner`` claimed for launch 30 s ago and never launched
    (`docker:starting` in status.json); returns its status and the dataset's name."""
    data = lab.dataset()
    name = data.rsplit("/", 1)[1]
    ds = DatasetStatus(
        key=data, runner="docker:starting", claimed_by=owner, claimed_at=seconds_ago(30)
    )
    status = JobStatus(
        job=job,
        analysis=lab.bucket,
        group="labA",
        submission="labA/submissions/gone_submit.json",
        datasets={name: ds},
        provenance={"launcher": "docker"},
    )
    assert JobStore(storage, lab.bucket).create(status)
    return status, name


def test_a_launch_claim_left_by_a_dead_dispatcher_is_retaken(
    storage: Storage, settings: Settings, probe: LoadedBlueprint, restarts_dispatcher: None
) -> None:
    """Gap 1: claimed in status.json (`docker:starting`) but never launched."""
    lab = variant_lab(storage, settings, probe, "s")
    owner = dead_owner()
    status, name = abandoned_launch(storage, lab, "job_abandoned_launch", owner)
    restart_and_wait_for_the_sweep(settings)
    final = lab.wait_end(status.job, timeout=60)
    assert final.state == State.SUCCEEDED
    assert launches(final, name) == 1
    assert any(f"launch claim of {owner} abandoned" in e.message for e in final.events)


def test_a_launch_claim_of_a_live_dispatcher_is_left_alone(
    storage: Storage, settings: Settings, probe: LoadedBlueprint, restarts_dispatcher: None
) -> None:
    lab = variant_lab(storage, settings, probe, "s2")
    data = lab.dataset()
    name = data.rsplit("/", 1)[1]
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "ncaas_dev"])
    try:
        status = JobStatus(
            job="job_claimed_by_a_live_one",
            analysis=lab.bucket,
            group="labA",
            submission="labA/submissions/x_submit.json",
            datasets={
                name: DatasetStatus(
                    key=data,
                    runner="docker:starting",
                    claimed_by=f"{socket.gethostname()}:{live.pid}",
                    claimed_at=seconds_ago(30),
                )
            },
        )
        JobStore(storage, lab.bucket).create(status)
        restart_and_wait_for_the_sweep(settings)
        ds = lab.client.status("labA", status.job).datasets[name]
        assert (ds.state, ds.runner) == (State.QUEUED, "docker:starting")
    finally:
        live.kill()
        live.wait()


def s3_etag(body: bytes) -> str:
    return hashlib.md5(body).hexdigest()  # a single-part upload's ETag


def test_a_submission_claim_left_by_a_dead_dispatcher_is_retaken(
    storage: Storage, settings: Settings, probe: LoadedBlueprint, dispatcher: int
) -> None:
    """Claimed (If-None-Match) but the dispatcher died before making the job folder."""
    lab = variant_lab(storage, settings, probe, "c2")
    body = json.dumps({"dataname": lab.dataset()}).encode()
    key = "labA/submissions/abandoned_submit.json"
    claim = {
        "submission": key,
        "etag": s3_etag(body),
        "job": None,
        "owner": dead_owner(),
        "claimed_at": seconds_ago(30),
    }
    storage.put_json(lab.bucket, claim_key(key, s3_etag(body)), claim)
    etag = storage.put_bytes(lab.bucket, key, body)
    assert etag == s3_etag(body)
    final = lab.wait_end(lab.wait_job(Submitted(key, etag)), timeout=60)
    assert final.state == State.SUCCEEDED
    assert jobs_by_submission(lab)[key] == 1


def test_a_job_folder_made_but_not_published_is_used_not_duplicated(
    storage: Storage, settings: Settings, probe: LoadedBlueprint, dispatcher: int
) -> None:
    """The dead dispatcher had created status.json but not yet written the job into the claim."""
    lab = variant_lab(storage, settings, probe, "c3")
    data = lab.dataset()
    name = data.rsplit("/", 1)[1]
    body = json.dumps({"dataname": data}).encode()
    key = "labA/submissions/half_done_submit.json"
    etag = s3_etag(body)
    owner = dead_owner()
    claim = {"submission": key, "etag": etag, "job": None, "owner": owner, "claimed_at": None}
    storage.put_json(lab.bucket, claim_key(key, etag), claim)
    status = JobStatus(
        job="job_half_done",
        analysis=lab.bucket,
        group="labA",
        submission=key,
        datasets={name: DatasetStatus(key=data)},
        provenance={"submission_etag": etag},
    )
    JobStore(storage, lab.bucket).create(status)
    storage.put_bytes(lab.bucket, key, body)
    job = lab.wait_job(Submitted(key, etag))
    assert job == "job_half_done"
    assert lab.wait_end(job, timeout=60).state == State.SUCCEEDED
    assert jobs_by_submission(lab)[key] == 1


def lose_the_event(settings: Settings) -> None:
    """Wait until S3's notification of the submission is in the queue, then drop it. It may be
    in flight: LocalStack can hand it to the long poll the killed dispatcher left open."""
    sqs = sqs_client(settings)
    url = sqs.get_queue_url(QueueName=QUEUE_NAME)["QueueUrl"]

    def waiting() -> int:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        reply = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)
        return sum(int(reply["Attributes"][name]) for name in names)

    wait_until(waiting, 10, "S3's event in the queue")
    sqs.purge_queue(QueueUrl=url)


def test_a_lost_event_is_found_by_the_sweep(
    storage: Storage,
    settings: Settings,
    probe: LoadedBlueprint,
    restarts_dispatcher: None,
) -> None:
    lab = variant_lab(storage, settings, probe, "e")
    kill_dispatcher(settings)
    submitted = lab.submit(dataname=lab.dataset())
    lose_the_event(settings)
    start_dispatcher(settings, "docker")
    assert lab.wait_end(lab.wait_job(submitted, timeout=30)).state == State.SUCCEEDED


def test_a_bad_submission_found_by_the_sweep_leaves_no_dataset_open(
    storage: Storage,
    settings: Settings,
    probe: LoadedBlueprint,
    restarts_dispatcher: None,
) -> None:
    """The restart's sweep rejects what the event path would, and ends every dataset too."""
    lab = variant_lab(storage, settings, probe, "e2")
    kill_dispatcher(settings)
    submitted = lab.submit(dataname=[lab.dataset(), "labA/inputs/never-uploaded.bin"])
    lose_the_event(settings)
    start_dispatcher(settings, "docker")
    final = lab.wait_end(lab.wait_job(submitted, timeout=30))
    assert final.state == State.REJECTED and "never-uploaded.bin" in (final.reason or "")
    assert len(final.datasets) == 2
    assert_no_dataset_left_open(final)


def s3_event(bucket: str, submitted: Submitted) -> str:
    record = {
        "eventName": "ObjectCreated:Put",
        "s3": {
            "bucket": {"name": bucket},
            "object": {"key": submitted.key, "eTag": submitted.etag},
        },
    }
    return json.dumps({"Records": [record]})


def test_two_dispatchers_and_repeated_events_start_one_job_each(
    storage: Storage,
    settings: Settings,
    probe: LoadedBlueprint,
    dispatcher: int,
    engine: Engine,
    tmp_path: Path,
) -> None:
    lab = variant_lab(storage, settings, probe, "race")
    assert settings.endpoint_url
    second_dir = tmp_path / "second-dispatcher"
    second_dir.mkdir()
    with (second_dir / "dispatcher.log").open("ab") as log:
        second = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ncaas_dev",
                "dispatch",
                "--endpoint-url",
                settings.endpoint_url,
            ],
            env={**os.environ, "NCAAS_STATE_DIR": str(second_dir)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        sqs = sqs_client(settings)
        url = sqs.get_queue_url(QueueName=QUEUE_NAME)["QueueUrl"]
        config = lab.config(lines=1)
        submitted = [
            lab.submit(dataname=[lab.dataset(), lab.dataset()], configname=config)
            for _ in range(12)
        ]
        for _ in range(2):  # every event delivered twice more
            for s in submitted:
                sqs.send_message(QueueUrl=url, MessageBody=s3_event(lab.bucket, s))
        finals = [lab.wait_end(lab.wait_job(s), timeout=120) for s in submitted]
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=15)
    assert all(f.state == State.SUCCEEDED for f in finals)
    assert all(launches(f, name) == 1 for f in finals for name in f.datasets)
    counts = jobs_by_submission(lab)
    assert sorted(counts) == sorted(s.key for s in submitted) and set(counts.values()) == {1}
    owners = set()
    for s in submitted:
        claim, _ = storage.get_json(lab.bucket, claim_key(s.key, s.etag))
        owners.add(claim["owner"])
    launchers = {ds.claimed_by for f in finals for ds in f.datasets.values()}
    assert len(owners | launchers) == 2, "both dispatchers must have taken part"
    assert_nothing_left_running(lab, engine, settings.state_dir, second_dir)
