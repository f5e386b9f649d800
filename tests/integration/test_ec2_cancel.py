"""A cancel file on the EC2 launcher (LocalStack's EC2 and the stand-in executing user-data):
the dispatcher terminates the dataset's instance, the stand-in powers the machine off (its
analysis container goes with it), and the dataset ends cancelled, not lost."""

from __future__ import annotations

import time

import pytest

from ncaas_dev.budget import Budget
from ncaas_dev.cloud.layout import TAG_JOB
from ncaas_dev.containers import Engine

from .jobs import Lab
from .test_cancel import cancel_one_by_alice
from .test_ec2_path import (  # noqa: F401 (the fixtures)
    PROBE_REGION,
    Cloud,
    cloud,
    probe_on_ec2,
    wait_running,
)

pytestmark = pytest.mark.integration


def instance_states(cloud: Cloud, job: str) -> list[str]:  # noqa: F811
    ours = [{"Name": f"tag:{TAG_JOB}", "Values": [job]}]
    reply = cloud.ec2(PROBE_REGION).describe_instances(Filters=ours)
    return [i["State"]["Name"] for r in reply["Reservations"] for i in r["Instances"]]


def test_a_cancel_file_terminates_the_instance(
    cloud: Cloud,  # noqa: F811
    probe_on_ec2: Lab,  # noqa: F811
    engine: Engine,
) -> None:
    lab = probe_on_ec2
    job = lab.wait_job(lab.submit(dataname=lab.dataset(), configname=lab.config(sleep=50)))
    wait_running(lab, job)
    deadline = time.monotonic() + 60  # the analysis runs in the stand-in's machine
    while not engine.client.containers.list(filters={"label": f"ncaas.job={job}"}):
        assert time.monotonic() < deadline, "the analysis never started on the instance"
        time.sleep(0.2)
    assert instance_states(cloud, job) == ["running"]
    _, name = cancel_one_by_alice(lab, engine, job)
    assert instance_states(cloud, job) == ["terminated"]
    ledger = Budget(lab.storage, lab.bucket).read(lab.group)
    assert f"{job}/{name}" not in ledger.reserved and f"{job}/{name}" in ledger.charges
