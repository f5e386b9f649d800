"""What the stack and its parts are called: the stack's name, the template's logical ids, and
the IAM names (within AWS's length limits) of the roles, profile, groups, users and Lambda."""

from __future__ import annotations

import hashlib
import re

# Logical ids of the template's fixed resources (groups and users get theirs from logical_id).
BUCKET = "AnalysisBucket"
INSTANCE_ROLE = "InstanceRole"
INSTANCE_PROFILE = "InstanceProfile"
DISPATCHER_ROLE = "DispatcherRole"
DISPATCHER_FUNCTION = "DispatcherFunction"
DISPATCHER_LOGS = "DispatcherLogGroup"
S3_INVOKE_PERMISSION = "DispatcherS3Permission"
SWEEP_RULE = "SweepRule"
SWEEP_PERMISSION = "SweepPermission"


def stack_name(analysis: str) -> str:
    return f"ncaas-{analysis}"


def iam_name(*parts: str, limit: int = 64) -> str:
    """A readable IAM name within AWS's length limit, unique by a hash suffix when cut."""
    name = "-".join(parts)
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9]}-{digest}"


def logical_id(kind: str, *names: str) -> str:
    """CloudFormation ids are alphanumeric: drop the rest, keep them unique with a hash."""
    raw = "/".join(names)
    clean = "".join(part.title() for part in re.split(r"[^A-Za-z0-9]+", raw) if part)
    digest = hashlib.sha256(raw.encode()).hexdigest()[:6]
    return f"{kind}{clean[:80]}{digest}"


def instance_role_name(analysis: str) -> str:
    return iam_name("ncaas", analysis, "runner")


def instance_profile_name(analysis: str) -> str:
    return iam_name("ncaas", analysis, "runner", limit=128)


def dispatcher_role_name(analysis: str) -> str:
    return iam_name("ncaas", analysis, "dispatcher")


def dispatcher_function_name(analysis: str) -> str:
    return iam_name("ncaas", analysis, "dispatcher")


def group_name(analysis: str, group: str) -> str:
    return iam_name("ncaas", analysis, group, limit=128)


def user_name(analysis: str, group: str, user: str) -> str:
    return iam_name(analysis, group, user)
