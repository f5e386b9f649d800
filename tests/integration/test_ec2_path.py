"""The cloud path, offline: the EC2 launcher against LocalStack's EC2, with the stand-in
executing each instance's user-data on this machine.

These tests drive a LocalStack of their own (started by the project's code, like the session's)
because they switch the stack's dispatcher between launchers, which the session's must not see.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import yaml
from waiting import free_port  # tests/ is on sys.path: pytest's rootdir conftest

from ncaas_dev.aws import ec2_client, s3_client
from ncaas_dev.cloud.layout import TAG_ANALYSIS, TAG_IMAGE_ID, TAG_JOB, StackRecord
from ncaas_dev.cloud.layout import save_stack_record as save_stack
from ncaas_dev.containers import Engine
from ncaas_dev.local.stack import STACK_PROCESSES, PidFile, start_localstack
from ncaas_dev.settings import Settings
from ncaas_dev.status import State
from ncaas_dev.storage import Storage

from .jobs import ROOT, Lab, copy_blueprint, ncaas, pin_image

FIXTURES = ROOT / "tests" / "fixtures"


pytestmark = pytest.mark.integration
PROBE_REGION = "eu-west-1"


@dataclass
class Cloud:
    settings: Settings
    env: dict[str, str]
    storage: Storage

    def ec2(self, region: str = "us-east-1"):  # type: ignore[no-untyped-def]
        return ec2_client(replace(self.settings, region=region))

    def register_ami(self, image_id: str | None, region: str = "us-east-1") -> str:
        ami = self.ec2(region).register_image(
            Name=f"ncaas-test-{secrets.token_hex(4)}",
            RootDeviceName="/dev/sda1",
            BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 8}}],
        )["ImageId"]
        if image_id:
            tags = [{"Key": TAG_IMAGE_ID, "Value": image_id}]
            self.ec2(region).create_tags(Resources=[ami], Tags=tags)
        return str(ami)

    def live_instances(self, analysis: str, region: str = "us-east-1") -> list[str]:
        reply = self.ec2(region).describe_instances(
            Filters=[
                {"Name": f"tag:{TAG_ANALYSIS}", "Values": [analysis]},
                {"Name": "instance-state-name", "Values": ["pending", "running", "stopping"]},
            ]
        )
        return [i["InstanceId"] for r in reply["Reservations"] for i in r["Instances"]]


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    state = tmp_path_factory.mktemp("ec2-state")
    settings = Settings(endpoint_url=f"http://127.0.0.1:{free_port()}", state_dir=state)
    start_localstack(settings)
    assert settings.endpoint_url
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": settings.endpoint_url,
        "NCAAS_STATE_DIR": str(state),
        "COLUMNS": "200",
    }
    yield Cloud(settings, env, Storage(s3_client(settings), settings.endpoint_url))
    ncaas(["down"], env)
    for name in STACK_PROCESSES:
        PidFile(state, name).stop()


def blueprint_copy(source: Path, folder: Path, **cloud: object) -> Path:
    return copy_blueprint(source, folder, "ncaas-ec2", cloud=cloud)


def build(engine: Engine, folder: Path) -> str:
    from ncaas_dev.blueprint import load_blueprint

    loaded = load_blueprint(folder)
    image_id = engine.build(loaded)
    pin_image(engine, loaded.blueprint.image_tag)  # until the session's end removes both
    return image_id


def test_ec2_launcher_gives_the_same_results_as_docker(
    cloud: Cloud, engine: Engine, tmp_path: Path
) -> None:
    folder = blueprint_copy(ROOT / "blueprints" / "spike-detect", tmp_path / "bp")
    ami = cloud.register_ami(build(engine, folder))
    text = (folder / "blueprint.yaml").read_text().replace("cloud:\n", f"cloud:\n  ami: {ami}\n")
    (folder / "blueprint.yaml").write_text(text)
    analysis = yaml.safe_load(text)["analysis"]
    data = tmp_path / "rec.bin"
    subprocess.run(
        [sys.executable, str(folder / "generate_data.py"), "--out", str(data)],
        check=True,
        capture_output=True,
    )
    runs: dict[str, dict[str, object]] = {}
    for launcher in ("ec2", "docker"):
        out = tmp_path / launcher
        args = ["run", str(folder), "--data", str(data), "--config", str(folder / "params.yaml")]
        done = ncaas([*args, "--launcher", launcher, "--out", str(out), "--json"], cloud.env)
        assert done.returncode == 0, done.stderr[-2000:]
        runs[launcher] = json.loads(done.stdout)
        job = Path(str(runs[launcher]["results_dir"]))
        assert (job / "process_results" / "end.txt").is_file()
        assert "235 spikes" in (job / "logs" / "rec.bin.log").read_text()
    ec2_run, docker_run = runs["ec2"], runs["docker"]
    assert ec2_run["provenance"]["launcher"] == "ec2"  # type: ignore[index]
    assert docker_run["provenance"]["launcher"] == "docker"  # type: ignore[index]
    assert str(ec2_run["datasets"]["rec.bin"]["runner"]).startswith("ec2:i-")  # type: ignore[index]
    results = [Path(str(r["results_dir"])) / "process_results" / "rec.bin" for r in runs.values()]
    for name in ("spikes.csv", "summary.json"):
        assert (results[0] / name).read_bytes() == (results[1] / name).read_bytes(), name
    # Every instance powered itself off and was terminated: nothing is left running.
    assert cloud.live_instances(analysis) == []


@pytest.fixture(scope="module")
def probe_on_ec2(
    cloud: Cloud, engine: Engine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Lab]:
    """The probe analysis on the EC2 launcher, provisioned by `ncaas-dev up --launcher ec2`.

    In another region than the stack's: instances start where bake registered the AMI.
    """
    folder = blueprint_copy(FIXTURES / "probe", tmp_path_factory.mktemp("probe") / "bp")
    ami = cloud.register_ami(build(engine, folder), region=PROBE_REGION)
    doc = yaml.safe_load((folder / "blueprint.yaml").read_text())
    doc["cloud"] |= {"ami": ami, "region": PROBE_REGION, "allowed_instance_types": ["c5.large"]}
    (folder / "blueprint.yaml").write_text(yaml.safe_dump(doc))
    done = ncaas(["up", str(folder), "--launcher", "ec2", "--json"], cloud.env)
    assert done.returncode == 0, done.stderr
    stack = json.loads(done.stdout)
    assert stack["dispatcher"]["launcher"] == "ec2" and stack["ec2_standin"]["running"]
    yield Lab(cloud.storage, doc["analysis"])
    for container in engine.client.containers.list(
        all=True, filters={"label": f"ncaas.analysis={doc['analysis']}"}
    ):
        container.remove(force=True)


def wait_running(lab: Lab, job: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lab.client.status(lab.group, job).state == State.RUNNING:
            return
        time.sleep(0.2)
    raise AssertionError(f"{job} never ran")


def test_instance_terminated_mid_run_ends_lost(
    cloud: Cloud, probe_on_ec2: Lab, engine: Engine
) -> None:
    lab = probe_on_ec2
    job = lab.wait_job(lab.submit(dataname=lab.dataset(), configname=lab.config(sleep=60)))
    wait_running(lab, job)
    ours = [{"Name": f"tag:{TAG_JOB}", "Values": [job]}]
    ec2 = cloud.ec2(PROBE_REGION)
    instances = ec2.describe_instances(Filters=ours)["Reservations"][0]["Instances"]
    ec2.terminate_instances(InstanceIds=[instances[0]["InstanceId"]])
    started = time.monotonic()
    status = lab.wait_end(job, timeout=30)
    (dataset,) = status.datasets.values()
    assert dataset.state == State.FAILED
    assert dataset.reason and "instance lost" in dataset.reason, dataset.reason
    assert instances[0]["InstanceId"] in dataset.reason
    assert time.monotonic() - started < 30
    # The analysis container goes with its machine (the stand-in polls every 0.25 s).
    deadline = time.monotonic() + 10
    while engine.client.containers.list(all=True, filters={"label": f"ncaas.job={job}"}):
        assert time.monotonic() < deadline, "the lost instance's container is still there"
        time.sleep(0.2)


def test_a_folder_dataset_on_its_chosen_instance_type(probe_on_ec2: Lab, cloud: Cloud) -> None:
    """The EC2 path treats a folder (NeuroCAAS's multi-file dataset) like any dataset, and
    launches the instance type the submission chose."""
    lab = probe_on_ec2
    folder = f"frames{secrets.token_hex(2)}"
    for name in ("f1.png", "nested/f2.png"):
        lab.put("inputs", f"{folder}/{name}", name.encode())
    submitted = lab.submit(
        dataname=f"labA/inputs/{folder}/", configname=lab.config(lines=1), instance_type="c5.large"
    )
    job = lab.wait_job(submitted)
    status = lab.wait_end(job, timeout=180)
    assert status.state == State.SUCCEEDED, status.reason
    assert str(status.datasets[folder].runner).startswith("ec2:i-")
    facts = json.loads(lab.text(lab.paths(job).outputs(folder) + "facts.json"))
    assert facts["files"] == ["f1.png", "nested/f2.png"]
    ours = [{"Name": f"tag:{TAG_JOB}", "Values": [job]}]
    reply = cloud.ec2(PROBE_REGION).describe_instances(Filters=ours)
    assert [i["InstanceType"] for r in reply["Reservations"] for i in r["Instances"]] == [
        "c5.large"
    ]
    deadline = time.monotonic() + 60  # its instance powers itself off after the runner
    while cloud.live_instances(lab.bucket, PROBE_REGION):
        assert time.monotonic() < deadline, "the folder dataset's instance is still up"
        time.sleep(0.5)


def test_failed_run_instances_puts_the_error_code_in_status(
    cloud: Cloud, probe_on_ec2: Lab
) -> None:
    lab = probe_on_ec2
    save_stack(cloud.storage, lab.bucket, StackRecord(stack_name="x", instance_profile="nope"))
    try:
        status = lab.run(dataname=lab.dataset(), configname=lab.config(), timeout=30)
    finally:
        cloud.storage.s3.delete_object(Bucket=lab.bucket, Key=".ncaas/stack.json")
    (dataset,) = status.datasets.values()
    assert dataset.state == State.FAILED
    assert dataset.reason and "RunInstances failed: NoSuchEntity" in dataset.reason
    assert cloud.live_instances(lab.bucket, PROBE_REGION) == []


def test_run_without_an_ami_is_refused_before_anything_starts(cloud: Cloud, tmp_path: Path) -> None:
    folder = blueprint_copy(FIXTURES / "probe", tmp_path / "bp")
    data = tmp_path / "d.bin"
    data.write_bytes(b"x")
    done = ncaas(["run", str(folder), "--data", str(data), "--launcher", "ec2"], cloud.env)
    assert done.returncode == 2
    assert "has no cloud.ami" in done.stderr and "ncaas-dev bake" in done.stderr


def test_run_with_an_ami_that_does_not_exist_is_refused(cloud: Cloud, tmp_path: Path) -> None:
    folder = blueprint_copy(FIXTURES / "probe", tmp_path / "bp", ami="ami-0000000000000dead")
    data = tmp_path / "d.bin"
    data.write_bytes(b"x")
    done = ncaas(["run", str(folder), "--data", str(data), "--launcher", "ec2"], cloud.env)
    assert done.returncode == 2
    assert "AMI ami-0000000000000dead (cloud.ami) does not exist" in done.stderr
