"""What really exists after the stack settled: every resource looked up in its own service.

LocalStack's CloudFormation reports resources it does not implement as created, so the
stack's word is not taken: the bucket's settings, its notifications, the IAM roles, profile,
groups and users, and the Lambda are each asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from ...aws import client
from ...blueprint import LoadedBlueprint
from ...bucketconfig import default_encryption, notifications, public_access_block
from ...errors import StorageError
from ...settings import Settings
from ...storage import Storage

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient


@dataclass
class Check:
    """One resource looked up in its own service after the stack settled."""

    logical_id: str
    kind: str
    name: str
    present: bool
    detail: str = ""


def _check_bucket(storage: Storage, bucket: str) -> tuple[bool, str]:
    if not storage.bucket_exists(bucket):
        return False, "no bucket"
    problems = []
    try:
        block = public_access_block(storage, bucket)
    except StorageError:
        block = None
    if block is None:
        problems.append("no public access block")
    elif not all(block.values()):
        problems.append("public access not fully blocked")
    try:
        encrypted = bool(default_encryption(storage, bucket))
    except StorageError:
        encrypted = False
    if not encrypted:
        problems.append("no default encryption")
    return not problems, "; ".join(problems) or "public access blocked, SSE-S3"


def _check_notifications(settings: Settings, storage: Storage, loaded: LoadedBlueprint) -> Check:
    """Submissions reach a dispatcher: the local queue on LocalStack, else the Lambda."""
    bucket = loaded.blueprint.bucket
    try:
        config = notifications(storage, bucket)
    except StorageError as e:
        return Check("(notifications)", "S3 notification", bucket, False, e.message)
    if settings.local:
        queues = [q["QueueArn"].rsplit(":", 1)[-1] for q in config.get("QueueConfigurations", [])]
        return Check(
            "(notifications)", "S3 notification", bucket, bool(queues),
            f"submissions -> SQS {', '.join(queues) or 'nothing'} (local dispatcher loop)",
        )  # fmt: skip
    rules = config.get("LambdaFunctionConfigurations", [])
    wanted = 2 * len(loaded.blueprint.groups)  # each group's submissions and cancel requests
    return Check(
        "(notifications)", "S3 notification", bucket, len(rules) == wanted,
        f"{len(rules)} of {wanted} group submission and cancel rules -> Lambda",
    )  # fmt: skip


def _look_up(iam: IAMClient, kind: str, name: str) -> tuple[bool, str]:
    """Whether an IAM resource exists as the stack says, with what it holds."""
    if kind == "AWS::IAM::Role":
        iam.get_role(RoleName=name)
        policies = iam.list_role_policies(RoleName=name)["PolicyNames"]
        return bool(policies), f"inline policies: {', '.join(policies) or 'none'}"
    if kind == "AWS::IAM::InstanceProfile":
        profile = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
        roles = [x["RoleName"] for x in profile["Roles"]]
        return bool(roles), f"roles: {', '.join(roles) or 'none'}"
    if kind == "AWS::IAM::Group":
        users = [u["UserName"] for u in iam.get_group(GroupName=name)["Users"]]
        policies = iam.list_group_policies(GroupName=name)["PolicyNames"]
        detail = f"users: {', '.join(users) or 'none'}; policies: {', '.join(policies) or 'none'}"
        return bool(policies), detail
    if kind == "AWS::IAM::User":
        groups = [g["GroupName"] for g in iam.list_groups_for_user(UserName=name)["Groups"]]
        return bool(groups), f"in group {', '.join(groups) or 'none'}"
    return True, "not checked"


def verify(
    settings: Settings,
    loaded: LoadedBlueprint,
    resources: list[dict[str, str]],
    iam: IAMClient,
    storage: Storage,
) -> list[Check]:
    """Look every stack resource up in its own service (LocalStack may have faked it)."""
    bucket = loaded.blueprint.bucket
    checks = [Check("(bucket)", "AWS::S3::Bucket", bucket, *_check_bucket(storage, bucket))]
    checks.append(_check_notifications(settings, storage, loaded))
    for r in resources:
        kind, physical, logical = r["type"], r["physical_id"], r["logical_id"]
        if kind == "AWS::S3::Bucket":
            continue  # checked above, in or out of the stack
        try:
            if kind == "AWS::Lambda::Function":
                lam = client(settings, "lambda")
                config = lam.get_function(FunctionName=physical)["Configuration"]
                present = config.get("State") == "Active"
                detail = f"state {config.get('State')} {config.get('StateReason', '')}".strip()
            else:
                present, detail = _look_up(iam, kind, physical)
        except ClientError as e:
            present, detail = False, str(e.response.get("Error", {}).get("Code", "error"))
        checks.append(Check(logical, kind, physical, present, detail))
    return checks
