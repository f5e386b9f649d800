"""Hostile neighbours on a lab's shared machine (issue 20, items 1-3): another local user plants
instances on the stack's LocalStack, attaches to it, or reads its state folder.

Each test creates the other user itself (root only) and drives a LocalStack of its own.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from waiting import free_port  # tests/ is on sys.path: pytest's rootdir conftest

from ncaas_dev.aws import ec2_client
from ncaas_dev.cloud.ec2.signing import TAG_PROOF, launch_proof, stack_secret
from ncaas_dev.cloud.layout import TAG_DATASET, TAG_JOB
from ncaas_dev.local.stack import (
    STACK_PROCESSES,
    PidFile,
    localstack_python,
    start_localstack,
    start_standin,
)
from ncaas_dev.settings import Settings

from .jobs import ROOT
from .other_user import OtherUser, other_user, site_packages

pytestmark = pytest.mark.integration
SPIKES = ROOT / "blueprints" / "spike-detect"
CANARY = f"real-key-{secrets.token_hex(8)}"

# What a neighbour runs: RunInstances on the stack's LocalStack with ncaas-dev's tags.
PLANT = """
import sys, boto3
endpoint, user_data, proof = sys.argv[1], sys.argv[2], sys.argv[3]
ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id="test", aws_secret_access_key="test")
DEVICES = [{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 8}}]
ami = ec2.register_image(Name="planted-" + proof[:6], RootDeviceName="/dev/sda1",
                         BlockDeviceMappings=DEVICES)
tags = [{"Key": "ncaas:job", "Value": "job_planted"}, {"Key": "ncaas:dataset", "Value": "x.bin"}]
if proof != "-":
    tags.append({"Key": "ncaas:launch-proof", "Value": proof})
reply = ec2.run_instances(ImageId=ami["ImageId"], MinCount=1, MaxCount=1, UserData=user_data,
                          TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])
print(reply["Instances"][0]["InstanceId"])
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A LocalStack and an EC2 stand-in of this module's own; the stand-in is started with a
    real-looking AWS key in its environment, which must reach no instance's script."""
    state = tmp_path_factory.mktemp("shared-state")
    settings = Settings(endpoint_url=f"http://127.0.0.1:{free_port()}", state_dir=state)
    start_localstack(settings)
    saved = dict(os.environ)
    os.environ.update({"AWS_SECRET_ACCESS_KEY": CANARY, "LAB_TOKEN": CANARY})
    try:
        start_standin(settings)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    yield settings
    for name in STACK_PROCESSES:
        PidFile(state, name).stop()


def _state(settings: Settings, instance: str) -> str:
    reply = ec2_client(replace(settings, region="us-east-1")).describe_instances(
        InstanceIds=[instance]
    )
    return str(reply["Reservations"][0]["Instances"][0]["State"]["Name"])


def _plant(user: OtherUser, settings: Settings, user_data: str, proof: str) -> str:
    assert settings.endpoint_url
    python = user.python(site_packages(Path(sys.executable)))
    done = user.run([str(python), "-c", PLANT, settings.endpoint_url, user_data, proof])
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def _wait(predicate, seconds: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"not within {seconds} s: {what}")


@pytest.mark.parametrize("proof", ["-", "forged"])
def test_a_neighbours_planted_instance_is_terminated_unrun(
    stack: Settings, tmp_path: Path, proof: str
) -> None:
    tmp_path.chmod(0o755)  # the neighbour cannot write here; the stand-in (root) could
    marker = tmp_path / "planted-ran"
    user_data = f"#!/bin/bash\ntouch {marker}\n"
    with other_user() as neighbour:
        forged = secrets.token_hex(32) if proof == "forged" else "-"
        instance = _plant(neighbour, stack, user_data, forged)
        _wait(lambda: _state(stack, instance) == "terminated", 60, f"{instance} terminated")
    assert not marker.exists(), "the stand-in ran a neighbour's user-data as the stack's owner"
    log = (stack.state_dir / "ec2-standin.log").read_text()
    assert f"{instance}: refused: no valid launch proof" in log


def test_an_instance_with_the_stacks_proof_runs_with_a_minimal_environment(
    stack: Settings, tmp_path: Path
) -> None:
    """The control: the stand-in does run what carries this stack's proof, and the script's
    environment holds none of the owner's secrets."""
    dump = tmp_path / "env.txt"
    user_data = f"#!/bin/bash\nenv > {dump}\n"
    proof = launch_proof(stack_secret(stack.state_dir), user_data.encode())
    ec2 = ec2_client(stack)
    ami = ec2.register_image(Name=f"control-{secrets.token_hex(3)}", RootDeviceName="/dev/sda1")
    tags = [
        {"Key": TAG_JOB, "Value": "job_control"},
        {"Key": TAG_DATASET, "Value": "x.bin"},
        {"Key": TAG_PROOF, "Value": proof},
    ]
    ec2.run_instances(
        ImageId=ami["ImageId"], MinCount=1, MaxCount=1, UserData=user_data,
        TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
    )  # fmt: skip
    _wait(lambda: dump.exists() and dump.stat().st_size > 0, 60, "the control's user-data ran")
    env = dump.read_text()
    assert CANARY not in env
    assert "NCAAS_INSTANCE_ID=" in env and "AWS_ACCESS_KEY_ID=test" in env
    secret = stack.state_dir / "ec2-launch.key"
    assert secret.stat().st_mode & 0o777 == 0o600
    # A neighbour copies that instance's user-data and proof (both readable through LocalStack's
    # EC2 API) onto an instance of their own: a proof proves one launch.
    dump.unlink()
    with other_user() as neighbour:
        replay = _plant(neighbour, stack, user_data, proof)
        _wait(lambda: _state(stack, replay) == "terminated", 60, f"{replay} terminated")
    assert not dump.exists(), "the stand-in ran a replayed launch"
    log = (stack.state_dir / "ec2-standin.log").read_text()
    assert f"{replay}: refused: its launch proof was used by another instance already" in log


# -- item 2: a second user's stack ---------------------------------------------------------------
LISTEN = """
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
print(s.getsockname()[1], flush=True)
time.sleep(600)
"""


def test_a_port_another_user_listens_on_is_refused_and_a_free_one_chosen(tmp_path: Path) -> None:
    from ncaas_dev.errors import UsageError
    from ncaas_dev.ownership import FIRST_OWN_PORT, LAST_OWN_PORT, own_endpoint, require_own_stack

    with other_user() as neighbour:
        log = tmp_path / "listen.log"
        listener = neighbour.popen(["/usr/bin/python3", "-c", LISTEN], log)
        try:
            _wait(lambda: log.read_text().strip().isdigit(), 30, "the neighbour listens")
            theirs = f"http://127.0.0.1:{log.read_text().strip()}"
            with pytest.raises(UsageError, match=f"uid {neighbour.uid} .{neighbour.name}."):
                require_own_stack(theirs)
            chosen = own_endpoint(theirs, tmp_path)  # no endpoint given: one of our own
            port = int(chosen.rsplit(":", 1)[1])
            assert FIRST_OWN_PORT <= port <= LAST_OWN_PORT
            require_own_stack(chosen)  # nobody's: no refusal
        finally:
            listener.kill()
            listener.wait()


@pytest.fixture
def neighbour() -> Iterator[OtherUser]:
    with other_user(docker_group=True) as user:
        yield user


def test_a_second_user_cannot_attach_and_gets_a_stack_of_their_own(
    stack: Settings, neighbour: OtherUser
) -> None:
    from ncaas_dev.aws import sqs_client
    from ncaas_dev.local.provision import ensure_queue

    assert stack.endpoint_url
    sqs = sqs_client(stack)
    queue, _ = ensure_queue(sqs, stack.endpoint_url)
    sqs.send_message(QueueUrl=queue, MessageBody='{"Records": []}')  # the first user's work
    python = neighbour.python(site_packages(Path(sys.executable)))
    ncaas = [str(python), "-m", "ncaas_dev"]
    localstack = neighbour.python(site_packages(localstack_python()), "localstack-venv")
    base = {"NCAAS_NO_COMMAND_SERVER": "1", "NCAAS_LOCALSTACK_PYTHON": str(localstack)}
    theirs = {**base, "AWS_ENDPOINT_URL": stack.endpoint_url}
    for command in (["up"], ["dispatch"], ["run", str(SPIKES), "--data", "/etc/hostname"]):
        done = neighbour.run([*ncaas, *command], **theirs)
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        assert "belongs to another user's stack" in done.stderr, done.stderr
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and f"uid {os.getuid()}" in errors[0], done.stderr
    # With an endpoint of their own, the second user's `up` runs a stack that `status` names.
    own = f"http://127.0.0.1:{free_port()}"
    env = {**base, "AWS_ENDPOINT_URL": own}
    try:
        done = neighbour.run([*ncaas, "up", "--json"], timeout=240, **env)
        assert done.returncode == 0, done.stderr[-2000:]
        status = neighbour.run([*ncaas, "status", "--json"], **env)
        assert f'"endpoint": "{own}"' in status.stdout
        state = neighbour.home / ".ncaas-dev"
        assert stat_mode(state) == 0o700
    finally:
        neighbour.run([*ncaas, "down"], **env)
    attrs = sqs.get_queue_attributes(
        QueueUrl=queue,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert attrs == {
        "ApproximateNumberOfMessages": "1",
        "ApproximateNumberOfMessagesNotVisible": "0",
    }


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777
