"""What a deployment needs of the AWS account, read before anything is created (issue 24).

A new account can reserve no Lambda concurrency (it has 10, and AWS keeps 10 unreserved: the
dispatcher's ``ReservedConcurrentExecutions: 1`` fails and the stack rolls back), has 0 vCPUs
for G and P instances (every GPU dataset would wait 30 minutes, then fail), may not offer an
instance type in its region, and is refused every launch while AWS still verifies it
(``PendingVerification``). ``check_account`` reads all of it (read-only calls and one
``RunInstances`` dry run) and returns one line per shortfall: the exact quota name, what was
found, what is needed, and how to raise it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..blueprint import Blueprint
from ..errors import NcaasError

# Lambda keeps this much of the account's concurrency unreserved, always.
LAMBDA_UNRESERVED_MINIMUM = 10
LAMBDA_RESERVED = 1  # the dispatcher's ReservedConcurrentExecutions
LAMBDA_QUOTA = ("L-B99A9384", "Concurrent executions")


@dataclass(frozen=True)
class VcpuQuota:
    """Service Quotas' vCPU quotas of an instance-family class, on demand and spot."""

    on_demand: tuple[str, str]  # (quota code, exact quota name)
    spot: tuple[str, str] | None


# EC2 counts vCPUs per family class; the first letters of a family name its class.
STANDARD = VcpuQuota(
    ("L-1216C47A", "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances"),
    ("L-34B43A08", "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests"),
)
CLASSES: dict[str, VcpuQuota] = {
    "g": VcpuQuota(
        ("L-DB2E81BA", "Running On-Demand G and VT instances"),
        ("L-3819A6DF", "All G and VT Spot Instance Requests"),
    ),
    "gr": VcpuQuota(
        ("L-DB2E81BA", "Running On-Demand G and VT instances"),
        ("L-3819A6DF", "All G and VT Spot Instance Requests"),
    ),
    "vt": VcpuQuota(
        ("L-DB2E81BA", "Running On-Demand G and VT instances"),
        ("L-3819A6DF", "All G and VT Spot Instance Requests"),
    ),
    "p": VcpuQuota(
        ("L-417A185B", "Running On-Demand P instances"),
        ("L-7212CCBC", "All P Spot Instance Requests"),
    ),
    "f": VcpuQuota(
        ("L-74FC7D96", "Running On-Demand F instances"),
        ("L-88CF9481", "All F Spot Instance Requests"),
    ),
    "inf": VcpuQuota(
        ("L-1945791B", "Running On-Demand Inf instances"),
        ("L-B5D1601B", "All Inf Spot Instance Requests"),
    ),
    "x": VcpuQuota(
        ("L-7295265B", "Running On-Demand X instances"),
        ("L-E3A00192", "All X Spot Instance Requests"),
    ),
}


def vcpu_quota(instance_type: str) -> VcpuQuota:
    family = instance_type.split(".", 1)[0]
    for prefix in sorted(CLASSES, key=len, reverse=True):  # "inf" before "i", "vt" before "v"
        if family.startswith(prefix) and family[len(prefix) : len(prefix) + 1].isdigit():
            return CLASSES[prefix]
    return STANDARD


@dataclass(frozen=True)
class Shortfall:
    """One thing the account lacks, said in one line."""

    what: str  # the exact quota name, or what is missing
    found: str
    needed: str
    fix: str  # the request that raises it, or what to do

    def line(self) -> str:
        return f"{self.what}: found {self.found}, needed {self.needed}; {self.fix}"


@dataclass
class AccountCheck:
    region: str
    shortfalls: list[Shortfall] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)  # what was read and was enough

    @property
    def ok(self) -> bool:
        return not self.shortfalls

    def refusal(self) -> NcaasError:
        lines = [s.line() for s in self.shortfalls]
        return NcaasError(
            f"the AWS account in {self.region} cannot run this deployment yet; nothing was "
            "created:\n  " + "\n  ".join(lines),
            hint="raise the quotas above (or pick other instance types), then run it again",
        )


@dataclass(frozen=True)
class Wanted:
    """The instance types a blueprint may launch, and whether on spot (the Batch launcher)."""

    on_demand: tuple[str, ...]
    spot: tuple[str, ...]
    concurrency: int


def wanted_types(blueprint: Blueprint) -> Wanted:
    cloud = blueprint.cloud
    on_demand = tuple(dict.fromkeys([cloud.instance_type, *cloud.allowed_instance_types]))
    spot: tuple[str, ...] = ()
    # The Batch part of the stack is opt-in (deploy adds it only for a written `batch:` section),
    # so only then do its hosts' quotas count.
    if "batch" in blueprint.model_fields_set:
        batch = blueprint.batch
        kinds = tuple(batch.instance_types or [cloud.instance_type])
        if batch.spot:
            spot = kinds
        else:
            on_demand = tuple(dict.fromkeys([*on_demand, *kinds]))
    return Wanted(on_demand, spot, blueprint.limits.max_concurrent_jobs)


def _increase(service: str, code: str, value: int) -> str:
    return (
        f"ask for more: aws service-quotas request-service-quota-increase --service-code "
        f"{service} --quota-code {code} --desired-value {value}"
    )


def _quota_value(quotas: Any, service: str, code: str) -> float | None:
    """The account's value of a quota (the applied one, else AWS's default)."""
    try:
        return float(
            quotas.get_service_quota(ServiceCode=service, QuotaCode=code)["Quota"]["Value"]
        )
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") != "NoSuchResourceException":
            raise
    reply = quotas.get_aws_default_service_quota(ServiceCode=service, QuotaCode=code)
    return float(reply["Quota"]["Value"])


def check_lambda(lambda_: Any, quotas: Any, check: AccountCheck) -> None:
    limit = lambda_.get_account_settings()["AccountLimit"]
    unreserved = int(limit.get("UnreservedConcurrentExecutions", 0))
    needed = LAMBDA_UNRESERVED_MINIMUM + LAMBDA_RESERVED
    if unreserved >= needed:
        check.checked.append(f"Lambda unreserved concurrency {unreserved} (needs {needed})")
        return
    code, name = LAMBDA_QUOTA
    total = int(limit.get("ConcurrentExecutions", unreserved))
    check.shortfalls.append(
        Shortfall(
            f"Lambda '{name}' ({code})",
            f"{unreserved} unreserved of {total}",
            f"{needed} unreserved (the dispatcher reserves {LAMBDA_RESERVED}, AWS keeps "
            f"{LAMBDA_UNRESERVED_MINIMUM})",
            _increase("lambda", code, 1000),
        )
    )


def check_types(ec2: Any, quotas: Any, wanted: Wanted, check: AccountCheck) -> None:
    """Each type offered in the region, and each family class's vCPU quota enough for one
    instance of its largest type (with the figure for ``max_concurrent_jobs`` at once)."""
    kinds = list(dict.fromkeys([*wanted.on_demand, *wanted.spot]))
    offers = ec2.describe_instance_type_offerings(
        LocationType="region", Filters=[{"Name": "instance-type", "Values": kinds}]
    )["InstanceTypeOfferings"]
    offered = {o["InstanceType"] for o in offers}
    for kind in kinds:
        if kind not in offered:
            check.shortfalls.append(
                Shortfall(
                    f"instance type {kind}",
                    f"not offered in {check.region}",
                    "a type the region offers",
                    f"pick another (aws ec2 describe-instance-type-offerings --region "
                    f"{check.region}) or another cloud.region",
                )
            )
    known = [k for k in kinds if k in offered]
    if not known:
        return
    described = ec2.describe_instance_types(InstanceTypes=known)["InstanceTypes"]
    vcpus = {d["InstanceType"]: int(d["VCpuInfo"]["DefaultVCpus"]) for d in described}
    needs: dict[tuple[str, str], tuple[int, str]] = {}  # quota -> (vCPUs of the largest, type)
    for spot, group in ((False, wanted.on_demand), (True, wanted.spot)):
        for kind in group:
            quota = vcpu_quota(kind).spot if spot else vcpu_quota(kind).on_demand
            if quota is None or kind not in vcpus:
                continue
            if vcpus[kind] > needs.get(quota, (0, ""))[0]:
                needs[quota] = (vcpus[kind], kind)
    for (code, name), (one, kind) in needs.items():
        found = _quota_value(quotas, "ec2", code)
        at_once = one * wanted.concurrency
        if found is not None and found >= one:
            check.checked.append(f"EC2 '{name}' {found:g} vCPUs (one {kind} needs {one})")
            continue
        check.shortfalls.append(
            Shortfall(
                f"EC2 '{name}' ({code})",
                f"{(found or 0):g} vCPUs",
                f"{one} for one {kind}, {at_once} for max_concurrent_jobs "
                f"{wanted.concurrency} at once",
                _increase("ec2", code, at_once),
            )
        )


# What PendingVerification means, wherever it is met.
PENDING_VERIFICATION = (
    "AWS is still verifying this new account (PendingVerification): no instance can start "
    "until it has, usually within minutes, sometimes up to 4 hours; AWS emails when it is done"
)


def check_launch(ec2: Any, blueprint: Blueprint, check: AccountCheck) -> None:
    """A ``RunInstances`` dry run of the baked AMI: a new account still being verified
    answers PendingVerification. Without an AMI (before the first bake) there is nothing to
    try yet."""
    ami = blueprint.cloud.ami
    if not ami:
        return
    try:
        ec2.run_instances(
            DryRun=True,
            ImageId=ami,
            InstanceType=blueprint.cloud.instance_type,
            MinCount=1,
            MaxCount=1,
        )
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        if code == "PendingVerification":
            check.shortfalls.append(
                Shortfall(
                    "account verification",
                    "PendingVerification",
                    "a verified account",
                    PENDING_VERIFICATION.split(": ", 1)[1],
                )
            )
        elif code != "DryRunOperation":  # anything else is the launcher's to report
            check.checked.append(f"RunInstances dry run answered {code}")
        else:
            check.checked.append(f"RunInstances of {ami} allowed (dry run)")


def check_account(
    blueprint: Blueprint, ec2: Any, lambda_: Any, quotas: Any, *, dispatcher: bool = True
) -> AccountCheck:
    """Read what the deployment needs of the account (nothing is created); ``dispatcher``:
    the Lambda's concurrency too (deploy and doctor, not bake)."""
    check = AccountCheck(blueprint.cloud.region)
    try:
        if dispatcher:
            check_lambda(lambda_, quotas, check)
        check_types(ec2, quotas, wanted_types(blueprint), check)
        check_launch(ec2, blueprint, check)
    except (ClientError, BotoCoreError) as e:
        from .aws_errors import NO_CREDENTIALS_HINT, aws_error

        raise aws_error("reading the account's quotas", e, None, NO_CREDENTIALS_HINT) from e
    return check


def account_clients(region: str) -> tuple[Any, Any, Any]:
    """EC2, Lambda and Service Quotas in ``region``, with the standard credential chain."""
    import boto3

    session = boto3.Session(region_name=region)
    return (
        session.client("ec2"),
        session.client("lambda"),
        session.client("service-quotas"),
    )


def require_account(blueprint: Blueprint, *, dispatcher: bool = True) -> AccountCheck:
    """``check_account`` on real AWS; raises the one-line-per-shortfall refusal."""
    check = check_account(
        blueprint, *account_clients(blueprint.cloud.region), dispatcher=dispatcher
    )
    if not check.ok:
        raise check.refusal()
    return check
