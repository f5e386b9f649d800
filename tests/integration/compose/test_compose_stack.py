"""The stack in containers, end to end: S3 in, a job out, a killed dispatcher, nothing left.

The tests share one compose stack (conftest.py) and run in file order; the last one stops it.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from ncaas_dev.blueprint import LoadedBlueprint
from ncaas_dev.containers import Engine
from ncaas_dev.launchers.sibling import runner_filters
from ncaas_dev.local import compose
from ncaas_dev.local import images as stack_images
from ncaas_dev.local.stack import STACK_PROCESSES, PidFile
from ncaas_dev.status import State

from ..jobs import Lab, ncaas
from ..test_analysis_outcomes import variant_lab
from ..test_restart import assert_a_killed_dispatcher_loses_nothing
from .conftest import Stack

pytestmark = pytest.mark.integration


def dispatcher_container(stack: Stack, engine: Engine) -> object:
    label = [
        f"com.docker.compose.project={stack.record.project}",
        "com.docker.compose.service=dispatcher",
    ]
    (found,) = engine.client.containers.list(all=True, filters={"label": label})
    return found


def test_the_images_are_ours_and_an_unchanged_build_is_skipped(
    stack: Stack, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    tags = {stack.record.localstack_image, stack.record.dispatcher_image}
    for container in stack.containers(engine):
        assert container.image.tags and set(container.image.tags) & tags  # type: ignore[attr-defined]

    def no_rebuild(*_: object) -> Path:
        raise AssertionError("an unchanged image was built again")

    monkeypatch.setattr(stack_images, "fill_wheelhouse", no_rebuild)
    again = stack_images.ensure_stack_images(say=lambda line: None)
    assert set(again.values()) == tags
    for tag in tags:  # built FROM the project's base, labelled with the content hash
        image = engine.client.images.get(tag)
        assert image.labels["org.ncaas.content"] == tag.rsplit(":", 1)[1]
        assert image.labels["org.ncaas.base.hash"]  # inherited from ncaas/base


def test_a_submission_written_into_s3_runs_to_succeeded(
    stack: Stack, compose_probe: LoadedBlueprint
) -> None:
    lab = Lab(stack.storage, compose_probe.blueprint.analysis)
    status = lab.run(dataname=lab.dataset(), configname=lab.config(lines=2))
    assert status.state == State.SUCCEEDED, status.reason
    (name,) = status.datasets
    assert status.datasets[name].exit_code == 0
    assert "line 1" in lab.text(lab.paths(status.job).log(name))
    assert status.provenance["launcher"] == "docker"
    # Whatever the stack left in the state folder belongs to the invoking user, as with `up`.
    for root, dirs, files in os.walk(stack.settings.state_dir):
        for entry in (*dirs, *files):
            st = os.lstat(os.path.join(root, entry))
            assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid()), entry


def test_a_failing_analysis_ends_failed(stack: Stack, compose_probe: LoadedBlueprint) -> None:
    lab = Lab(stack.storage, compose_probe.blueprint.analysis)
    status = lab.run(dataname=lab.dataset(), configname=lab.config(lines=1, exit=3))
    assert status.state == State.FAILED
    assert "3" in (status.reason or "")
    assert lab.text(lab.paths(status.job).end) is not None


def test_every_published_port_is_on_loopback(stack: Stack, engine: Engine) -> None:
    bindings = []
    for container in stack.containers(engine):
        container.reload()  # type: ignore[attr-defined]
        for spec in (container.attrs["NetworkSettings"]["Ports"] or {}).values():  # type: ignore[attr-defined]
            bindings += spec or []
    assert bindings, "LocalStack must be published on the host"
    assert {b["HostIp"] for b in bindings} == {"127.0.0.1"}
    assert {b["HostPort"] for b in bindings} == {str(stack.record.port)}


def test_status_says_the_stack_runs_in_containers(stack: Stack) -> None:
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": str(stack.settings.endpoint_url),
        "NCAAS_STATE_DIR": str(stack.settings.state_dir),
    }
    done = ncaas(["status", "--json"], env)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["stack"] == "containers"
    assert doc["localstack"]["running"] and doc["dispatcher"]["running"]
    assert doc["containers"]["project"] == stack.record.project


def test_run_jobs_logs_results_work_against_it_unchanged(
    stack: Stack, compose_probe: LoadedBlueprint, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": str(stack.settings.endpoint_url),
        "NCAAS_STATE_DIR": str(stack.settings.state_dir),
    }
    data = tmp_path / "rec.bin"
    data.write_bytes(b"x" * 100)
    analysis = compose_probe.blueprint.analysis
    out = tmp_path / "out"
    done = ncaas(["run", str(compose_probe.folder), "--data", str(data), "--out", str(out)], env)
    assert done.returncode == 0, done.stdout + done.stderr
    (job_dir,) = out.iterdir()
    assert (job_dir / "process_results" / "end.txt").exists()
    # `run` found the stack running and started none of its own beside it.
    for name in STACK_PROCESSES:
        assert not PidFile(stack.settings.state_dir, name).read().running, name
    jobs = json.loads(ncaas(["jobs", analysis, "--json"], env).stdout)
    assert job_dir.name in [j["job"] for j in jobs]
    logs = ncaas(["logs", analysis, job_dir.name], env)
    assert logs.returncode == 0 and "line 0" in logs.stdout
    got = ncaas(["results", analysis, job_dir.name, "--out", str(tmp_path / "again")], env)
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "again" / job_dir.name / "process_results" / "end.txt").exists()


def test_a_crashed_dispatcher_is_restarted_by_the_restart_policy(
    stack: Stack, engine: Engine, compose_probe: LoadedBlueprint
) -> None:
    container = dispatcher_container(stack, engine)
    before = container.attrs["RestartCount"]  # type: ignore[attr-defined]
    os.kill(container.attrs["State"]["Pid"], signal.SIGKILL)  # type: ignore[attr-defined]
    deadline = time.monotonic() + 60
    while True:
        container.reload()  # type: ignore[attr-defined]
        state = container.attrs["State"]  # type: ignore[attr-defined]
        if container.attrs["RestartCount"] > before and state["Running"]:  # type: ignore[attr-defined]
            break
        assert time.monotonic() < deadline, "the restart policy did not restart the dispatcher"
        time.sleep(0.2)
    lab = Lab(stack.storage, compose_probe.blueprint.analysis)
    assert lab.run(dataname=lab.dataset()).state == State.SUCCEEDED


def test_docker_kill_of_the_dispatcher_loses_and_duplicates_nothing(
    stack: Stack, engine: Engine, compose_probe: LoadedBlueprint
) -> None:
    """test_restart's SIGKILL test, with `docker kill` of the dispatcher's container and the
    stack started again by the same command that started it."""
    lab = variant_lab(
        stack.storage, stack.settings, compose_probe, "r", limits={"max_concurrent_jobs": 2}
    )
    assert_a_killed_dispatcher_loses_nothing(
        lab,
        engine,
        stack.settings.state_dir,
        kill=lambda: dispatcher_container(stack, engine).kill(),  # type: ignore[attr-defined]
        restart=lambda: compose.up(stack.settings, say=lambda line: None),
        sleep=3,
        wait=60,
        end_wait=180,
    )
    deadline = time.monotonic() + 30  # every runner container reaped, none left behind
    while engine.client.containers.list(all=True, filters=runner_filters(stack.record.state_dir)):
        assert time.monotonic() < deadline, "runner containers left behind"
        time.sleep(0.2)


def test_down_leaves_no_container_behind(stack: Stack, engine: Engine) -> None:
    """Last: stops the shared stack."""
    assert compose.down(stack.settings) is not None
    assert stack.containers(engine) == []
    runners = runner_filters(Path(stack.record.state_dir))
    assert engine.client.containers.list(all=True, filters=runners) == []
    assert compose.read_record(stack.settings.state_dir) is None
    network = f"{stack.record.project}_default"
    assert engine.client.networks.list(names=[network]) == []
