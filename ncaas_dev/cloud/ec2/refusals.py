"""RunInstances refusals: those a later attempt may not meet (capacity, quotas, throttling, a
role still propagating), and an instance type the launch's zone does not offer, said as a
reason a user can act on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ..quotas import PENDING_VERIFICATION

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

# RunInstances errors that a later attempt may not meet: capacity, quotas, throttling, and a
# brand-new account AWS has not finished verifying.
RETRYABLE_CODES = {
    "InsufficientInstanceCapacity",
    "VcpuLimitExceeded",
    "InstanceLimitExceeded",
    "RequestLimitExceeded",
    "PendingVerification",
}
# What a code means, where AWS's own message does not say it plainly.
MEANINGS = {"PendingVerification": PENDING_VERIFICATION}


def explained(message: str, error: BaseException | None) -> str:
    """``message`` with what its AWS error code means, when that needs saying."""
    meaning = MEANINGS.get(error_code(error))
    return f"{message} ({meaning})" if meaning else message


def error_code(error: BaseException | None) -> str:
    return error.response.get("Error", {}).get("Code", "") if isinstance(error, ClientError) else ""


def unsupported_here(ec2: EC2Client, task: Any, error: str) -> str:
    """RunInstances' "Unsupported" as a reason a user can act on: the zones that offer the type."""
    blueprint = task.record.blueprint
    kind = task.cloud_instance_type
    try:
        offers = ec2.describe_instance_type_offerings(
            LocationType="availability-zone",
            Filters=[{"Name": "instance-type", "Values": [kind]}],
        )["InstanceTypeOfferings"]
        zones = sorted(o["Location"] for o in offers)
    except (ClientError, BotoCoreError):
        zones = []
    offered = f"offered in {', '.join(zones)}" if zones else "offered in no zone EC2 would name"
    return (
        f"{kind} is not offered in the availability zone this launch landed in ({error}); it is "
        f"{offered} of {blueprint.cloud.region}: set cloud.subnet_id to a subnet in one of them"
    )


def is_retryable(error: BaseException | None) -> bool:
    """A RunInstances error worth retrying; a new instance profile is refused as invalid for a
    few seconds after its creation (IAM propagates it), which is one too."""
    if not isinstance(error, ClientError):
        return False
    code = error.response.get("Error", {}).get("Code", "")
    message = error.response.get("Error", {}).get("Message", "")
    return code in RETRYABLE_CODES or (
        code == "InvalidParameterValue" and "iam instance profile" in message.lower()
    )
