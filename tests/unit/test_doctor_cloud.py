"""`ncaas-dev doctor --cloud BLUEPRINT_DIR` (issue 24, part 5): what a first deployment still
needs, read from the account without creating anything. botocore's Stubber answers as a
brand-new account and as a ready one; only reads are queued, so any create fails the test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from ncaas_dev.blueprint import load_blueprint
from ncaas_dev.checks.doctor import Level, cloud_readiness
from ncaas_dev.cloud.readiness import CloudClients

SERVICES = ("ec2", "lambda", "service-quotas", "s3", "cloudformation")


@pytest.fixture
def stubs() -> Iterator[tuple[CloudClients, dict[str, Stubber]]]:
    session = boto3.Session(
        aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1"
    )
    clients = {s: session.client(s) for s in SERVICES}  # type: ignore[call-overload]
    stubbers = {s: Stubber(c) for s, c in clients.items()}
    for stub in stubbers.values():
        stub.activate()
    yield CloudClients(*clients.values()), stubbers
    for stub in stubbers.values():
        stub.assert_no_pending_responses()
        stub.deactivate()


def gpu_blueprint(write_blueprint: Any, **cloud: str) -> Any:
    extra = "".join(f"  {k}: {v}\n" for k, v in cloud.items())
    text = (
        "analysis: spike-doc\ngroups: [{name: labA}]\nresources: {gpu: true}\n"
        f"cloud:\n  instance_type: g4dn.xlarge\n{extra}"
    )
    return load_blueprint(write_blueprint(text))


def answer_quotas(stub: dict[str, Stubber], unreserved: int, gpu_vcpus: int) -> None:
    limit = {
        "ConcurrentExecutions": max(unreserved, 10),
        "UnreservedConcurrentExecutions": unreserved,
    }
    stub["lambda"].add_response("get_account_settings", {"AccountLimit": limit})
    offer = {"InstanceType": "g4dn.xlarge", "LocationType": "region", "Location": "us-east-1"}
    stub["ec2"].add_response("describe_instance_type_offerings", {"InstanceTypeOfferings": [offer]})
    kind = {"InstanceType": "g4dn.xlarge", "VCpuInfo": {"DefaultVCpus": 4}}
    stub["ec2"].add_response("describe_instance_types", {"InstanceTypes": [kind]})
    quota = {"QuotaCode": "L-DB2E81BA", "ServiceCode": "ec2", "Value": gpu_vcpus}
    stub["service-quotas"].add_response("get_service_quota", {"Quota": quota})


def test_a_new_account_gets_the_list_of_what_it_still_needs(
    stubs: tuple[CloudClients, dict[str, Stubber]], write_blueprint: Any
) -> None:
    clients, stub = stubs
    answer_quotas(stub, unreserved=10, gpu_vcpus=0)
    stub["s3"].add_client_error("head_bucket", "403", http_status_code=403)
    stub["ec2"].add_response("describe_vpcs", {"Vpcs": []})
    stub["cloudformation"].add_client_error(
        "describe_stacks", "ValidationError", "Stack with id ncaas-spike-doc does not exist"
    )
    loaded = gpu_blueprint(write_blueprint)
    checks = cloud_readiness(loaded, clients)
    got = [(c.name, c.level, c.detail) for c in checks]
    assert got == [
        (
            "quota",
            Level.FAIL,
            "Lambda 'Concurrent executions' (L-B99A9384): found 10 unreserved of 10, needed 11 "
            "unreserved (the dispatcher reserves 1, AWS keeps 10)",
        ),
        (
            "quota",
            Level.FAIL,
            "EC2 'Running On-Demand G and VT instances' (L-DB2E81BA): found 0 vCPUs, needed 4 "
            "for one g4dn.xlarge, 16 for max_concurrent_jobs 4 at once",
        ),
        (
            "bucket",
            Level.FAIL,
            "s3://spike-doc belongs to another account (bucket names are global)",
        ),
        ("network", Level.FAIL, "us-east-1 has no default VPC and cloud.subnet_id is unset"),
        ("stack", Level.WARN, "ncaas-spike-doc is not deployed yet"),
    ]
    fixes = [c.fix or "" for c in checks]
    assert "--quota-code L-B99A9384" in fixes[0] and "--quota-code L-DB2E81BA" in fixes[1]
    assert fixes[2].startswith("set cloud.bucket") and fixes[3].startswith("set cloud.subnet_id")
    assert fixes[4] == f"ncaas-dev deploy {loaded.folder} --cloud"


def test_a_ready_account_is_all_ok(
    stubs: tuple[CloudClients, dict[str, Stubber]], write_blueprint: Any
) -> None:
    clients, stub = stubs
    answer_quotas(stub, unreserved=990, gpu_vcpus=64)
    stub["ec2"].add_client_error("run_instances", "DryRunOperation", "would have succeeded")
    stub["s3"].add_response("head_bucket", {})
    subnet = {
        "SubnetId": "subnet-0123456789abcdef0",
        "VpcId": "vpc-1",
        "MapPublicIpOnLaunch": False,
    }
    stub["ec2"].add_response("describe_subnets", {"Subnets": [subnet]})
    endpoint = {"VpcEndpointId": "vpce-1", "VpcId": "vpc-1"}
    stub["ec2"].add_response("describe_vpc_endpoints", {"VpcEndpoints": [endpoint]})
    stack = {
        "StackName": "ncaas-spike-doc",
        "StackStatus": "UPDATE_COMPLETE",
        "CreationTime": "2026-01-01T00:00:00Z",
    }
    stub["cloudformation"].add_response("describe_stacks", {"Stacks": [stack]})
    loaded = gpu_blueprint(
        write_blueprint, ami="ami-0123456789abcdef0", subnet_id="subnet-0123456789abcdef0"
    )
    checks = cloud_readiness(loaded, clients)
    assert all(c.level == Level.OK for c in checks), checks
    assert [c.name for c in checks] == ["quota"] * 3 + ["bucket", "network", "stack"]
    assert "S3 through vpce-1" in checks[4].detail


def test_doctor_cloud_on_the_command_line_names_every_check(
    write_blueprint: Any, tmp_path: Path
) -> None:
    """The command itself, without credentials (none in the test session): each check says
    what failed instead of the command crashing, and the exit code is 1."""
    folder = write_blueprint("analysis: spike-doc\ngroups: [{name: labA}]\n")
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
    env |= {"NCAAS_NO_COMMAND_SERVER": "1", "COLUMNS": "200"}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from ncaas_dev.entry.front import main; main()",
            "doctor",
            "--cloud",
            str(folder),
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    names = [c["name"] for c in json.loads(done.stdout)["checks"]]
    for name in ("credentials", "quota", "bucket", "network", "stack"):
        assert name in names, names
