"""``ncaas-dev doctor --cloud BLUEPRINT_DIR``: what a first deployment on this account still
needs, read without creating anything (the checklist of docs/cloud-path.md, as a command).

Each part is one ``Check`` (doctor shows it as its own) and never raises: the account's
quotas (``quotas.py``), the bucket name, the network the instances start in, whether the
stack is deployed. The credentials and the AMI are doctor's own checks, run beside these.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..blueprint import Blueprint
from ..errors import NcaasError
from .deploy.names import stack_name
from .quotas import AccountCheck, check_account


class Level(StrEnum):  # doctor's levels, by value
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    """One finding; doctor shows it as one of its checks."""

    name: str
    level: Level
    detail: str
    fix: str | None = None


@dataclass(frozen=True)
class CloudClients:
    ec2: Any
    lambda_: Any
    quotas: Any
    s3: Any
    cloudformation: Any


def cloud_clients(region: str) -> CloudClients:
    """The clients, in ``region``, with the standard credential chain."""
    import boto3

    session = boto3.Session(region_name=region)
    names = ("ec2", "lambda", "service-quotas", "s3", "cloudformation")
    return CloudClients(*(session.client(n) for n in names))  # type: ignore[call-overload]


def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def _guard(name: str, probe: Callable[[], list[Check]]) -> list[Check]:
    try:
        return probe()
    except ClientError as e:
        message = e.response.get("Error", {}).get("Message", "")
        return [Check(name, Level.FAIL, f"AWS answered {_code(e)}: {message}".strip())]
    except BotoCoreError as e:
        return [Check(name, Level.FAIL, str(e))]
    except NcaasError as e:
        return [Check(name, Level.FAIL, e.message, e.hint)]


def account_checks(account: AccountCheck) -> list[Check]:
    checks = [
        Check("quota", Level.FAIL, s.line().split("; ", 1)[0], s.fix) for s in account.shortfalls
    ]
    checks += [Check("quota", Level.OK, line) for line in account.checked]
    return checks


def bucket_check(s3: Any, blueprint: Blueprint) -> list[Check]:
    bucket = blueprint.bucket
    try:
        s3.head_bucket(Bucket=bucket)
        return [Check("bucket", Level.OK, f"s3://{bucket} exists and is this account's")]
    except ClientError as e:
        if _code(e) in ("403", "AccessDenied", "Forbidden"):
            return [
                Check(
                    "bucket",
                    Level.FAIL,
                    f"s3://{bucket} belongs to another account (bucket names are global)",
                    f"set cloud.bucket to a name of your own, e.g. {bucket}-<your lab>",
                )
            ]
        if _code(e) in ("404", "NoSuchBucket", "NotFound"):
            return [Check("bucket", Level.OK, f"s3://{bucket} is free; deploy creates it")]
        raise


def network_check(ec2: Any, blueprint: Blueprint) -> list[Check]:
    """Where instances start: the default VPC, or ``cloud.subnet_id``, which reaches S3 by a
    public address or a gateway endpoint (the runner talks to S3 only)."""
    cloud = blueprint.cloud
    if not cloud.subnet_id:
        vpcs = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
        if not vpcs:
            return [
                Check(
                    "network",
                    Level.FAIL,
                    f"{cloud.region} has no default VPC and cloud.subnet_id is unset",
                    "set cloud.subnet_id to a subnet that reaches S3",
                )
            ]
        return [Check("network", Level.OK, f"the default VPC {vpcs[0]['VpcId']}; EC2 picks a zone")]
    subnets = ec2.describe_subnets(SubnetIds=[cloud.subnet_id])["Subnets"]
    subnet = subnets[0]
    if subnet.get("MapPublicIpOnLaunch"):
        return [Check("network", Level.OK, f"{cloud.subnet_id} gives instances a public address")]
    endpoints = ec2.describe_vpc_endpoints(
        Filters=[
            {"Name": "vpc-id", "Values": [subnet["VpcId"]]},
            {"Name": "service-name", "Values": [f"com.amazonaws.{cloud.region}.s3"]},
        ]
    )["VpcEndpoints"]
    if endpoints:
        return [
            Check(
                "network",
                Level.OK,
                f"{cloud.subnet_id}: S3 through {endpoints[0]['VpcEndpointId']}",
            )
        ]
    return [
        Check(
            "network",
            Level.WARN,
            f"{cloud.subnet_id} gives no public address and its VPC has no S3 gateway endpoint: "
            "the runner reaches S3 only through a NAT, if there is one",
            f"aws ec2 create-vpc-endpoint --vpc-id {subnet['VpcId']} --service-name "
            f"com.amazonaws.{cloud.region}.s3 --route-table-ids <the subnet's route table>",
        )
    ]


def stack_check(cloudformation: Any, blueprint: Blueprint, folder: str) -> list[Check]:
    name = stack_name(blueprint.analysis)
    try:
        stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except ClientError as e:
        if "does not exist" not in str(e):
            raise
        stacks = []
    deploy = f"ncaas-dev deploy {folder} --cloud"
    if not stacks:
        return [Check("stack", Level.WARN, f"{name} is not deployed yet", deploy)]
    status = stacks[0]["StackStatus"]
    if status.endswith("_COMPLETE") and "ROLLBACK" not in status:
        return [Check("stack", Level.OK, f"{name} is {status}")]
    return [Check("stack", Level.FAIL, f"{name} is {status}", deploy)]


def cloud_checks(blueprint: Blueprint, folder: str, clients: CloudClients) -> list[Check]:
    """Every check of a first deployment beyond credentials and the AMI, in the order the
    checklist gives them."""
    account = lambda: account_checks(  # noqa: E731
        check_account(blueprint, clients.ec2, clients.lambda_, clients.quotas)
    )
    probes: list[tuple[str, Callable[[], list[Check]]]] = [
        ("quota", account),
        ("bucket", lambda: bucket_check(clients.s3, blueprint)),
        ("network", lambda: network_check(clients.ec2, blueprint)),
        ("stack", lambda: stack_check(clients.cloudformation, blueprint, folder)),
    ]
    return [check for name, probe in probes for check in _guard(name, probe)]
