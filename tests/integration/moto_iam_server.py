"""moto's server, with IAM evaluated as AWS does for the calls the cloud path makes.

moto 5 checks each request's action against the principal's policies, but asks every policy
about one resource (an S3 object or bucket ARN, ``*`` for EC2) and with no condition values,
so conditions are waved through. This script patches two things before starting the server:

- the request context: ``s3:ListBucket`` carries ``s3:prefix`` (the request's ``prefix``, or
  "" without one); ``ec2:RunInstances`` is authorised against each resource it touches (the
  image, the instance, its volume, network interface, subnet and security group) with
  ``ec2:InstanceType`` and ``aws:RequestTag/*``, its tags need ``ec2:CreateTags`` with
  ``ec2:CreateAction``, and its instance profile's role needs ``iam:PassRole`` with
  ``iam:PassedToService``: the checks AWS makes on RunInstances; ``ec2:TerminateInstances``
  is authorised against each instance, with its tags as ``aws:ResourceTag/*``;
- the conditions: StringEquals, StringLike and their negations evaluated as IAM does (any of
  a list matches; ``*`` and ``?``; a key the request lacks fails a positive operator). A key
  this context cannot supply is ignored, as moto ignores it.

A refusal says who, which action and which resource, as AWS's own message does.
Run as ``python moto_iam_server.py -H 127.0.0.1 -p PORT`` (moto.server's arguments).
"""

from __future__ import annotations

import fnmatch
import sys
from typing import Any
from urllib.parse import parse_qs, urlparse

from moto.core.exceptions import AccessDeniedError
from moto.iam import access_control as ac
from moto.s3.exceptions import S3AccessDeniedError

# Keys this context supplies when the request has them: absent from a request, they fail.
SUPPLIED = (
    "s3:prefix",
    "ec2:InstanceType",
    "aws:RequestTag/",
    "aws:ResourceTag/",
    "ec2:CreateAction",
)
EC2_LAUNCH_RESOURCES = ("volume/*", "network-interface/*", "subnet/*", "security-group/*")


def _matches(operator: str, expected: Any, actual: str) -> bool:
    patterns = expected if isinstance(expected, list) else [expected]
    if operator.startswith("StringLike") or operator.startswith("StringNotLike"):
        hit = any(fnmatch.fnmatchcase(actual, str(p)) for p in patterns)
    else:
        hit = actual in [str(p) for p in patterns]
    return not hit if "Not" in operator else hit


def check_conditions(self: Any, values: dict[str, str] | None) -> bool:
    values = values or {}
    for operator, keys in (self._statement.get("Condition") or {}).items():
        for key, expected in keys.items():
            if key in values:
                ok = _matches(operator, expected, values[key])
            else:  # absent, it fails a positive operator; one moto cannot supply is ignored
                ok = not key.startswith(SUPPLIED) or operator.endswith("IfExists")
                ok = ok or "Not" in operator
            if not ok:
                return False
    return True


class Denied(Exception):
    def __init__(self, action: str, resource: str) -> None:
        super().__init__(action, resource)
        self.action, self.resource = action, resource


def _params(request: Any) -> dict[str, str]:
    data = request._data or {}
    flat = {k: (v[0] if isinstance(v, list) and v else v) for k, v in data.items()}
    query = parse_qs(urlparse(request._path).query, keep_blank_values=True)
    return {**{k: str(v) for k, v in flat.items()}, **{k: v[0] for k, v in query.items()}}


def _allowed(request: Any, action: str, resource: str, values: dict[str, str]) -> bool:
    permitted = False
    for policy in request._access_key.collect_policies():
        result = ac.IAMPolicy(policy).is_action_permitted(action, resource, None, values)
        if result == ac.PermissionResult.DENIED:
            return False
        permitted = permitted or result == ac.PermissionResult.PERMITTED
    return permitted


def _require(request: Any, action: str, resource: str, values: dict[str, str]) -> None:
    if not _allowed(request, action, resource, values):
        raise Denied(action, resource)


def _run_instances(request: Any, params: dict[str, str]) -> None:
    region, account = request._region, request.account_id
    tags = {
        params[k]: params.get(k.replace(".Key", ".Value"), "")
        for k in params
        if k.startswith("TagSpecification.") and k.endswith(".Key")
    }
    values = {"ec2:InstanceType": params.get("InstanceType", "")}
    values.update({f"aws:RequestTag/{k}": v for k, v in tags.items()})
    image = f"arn:aws:ec2:{region}::image/{params.get('ImageId', '')}"
    _require(request, "ec2:RunInstances", image, values)
    _require(request, "ec2:RunInstances", f"arn:aws:ec2:{region}:{account}:instance/*", values)
    for kind in EC2_LAUNCH_RESOURCES:
        _require(request, "ec2:RunInstances", f"arn:aws:ec2:{region}:{account}:{kind}", values)
    if tags:
        create = {"ec2:CreateAction": "RunInstances"}
        _require(request, "ec2:CreateTags", f"arn:aws:ec2:{region}:{account}:instance/*", create)
    profile = params.get("IamInstanceProfile.Name") or params.get("IamInstanceProfile.Arn", "")
    if profile:
        name = profile.rsplit("/", 1)[-1]
        for role in request.backend.get_instance_profile(name).roles:
            passed = {"iam:PassedToService": "ec2.amazonaws.com"}
            _require(request, "iam:PassRole", role.arn, passed)


def _terminate_instances(request: Any, params: dict[str, str]) -> None:
    from moto.ec2.models import ec2_backends

    region, account = request._region, request.account_id
    ec2 = ec2_backends[account][region]
    for name, instance in params.items():
        if name.startswith("InstanceId."):
            tags = ec2.describe_tags(filters={"resource-id": [instance]})
            values = {f"aws:ResourceTag/{t['key']}": t["value"] for t in tags}
            arn = f"arn:aws:ec2:{region}:{account}:instance/{instance}"
            _require(request, "ec2:TerminateInstances", arn, values)


def check_action_permitted(self: Any, resource: str) -> None:
    action = self._action
    if action == "sts:GetCallerIdentity":
        return
    params = _params(self)
    try:
        if action == "ec2:RunInstances":
            _run_instances(self, params)
        elif action == "ec2:TerminateInstances":
            _terminate_instances(self, params)
        else:
            values = {"s3:prefix": params.get("prefix", "")} if action == "s3:ListBucket" else {}
            _require(self, action, resource, values)
        if self._is_assuming_role_operation(resource) and not (
            self._check_role_trust_relationship(resource)
        ):
            raise Denied(action, resource)
    except Denied as e:
        message = (
            f"User: {self._access_key.arn} is not authorized to perform: {e.action} "
            f"on resource: {e.resource}"
        )
        if isinstance(self, ac.S3IAMRequest):
            error = S3AccessDeniedError()
            error.message = message
            raise error from None
        error_ = AccessDeniedError(user_arn=self._access_key.arn, action=e.action)
        error_.description = error_.description.replace(
            f"perform: {e.action}", f"perform: {e.action} on resource: {e.resource}"
        )
        raise error_ from None


ac.IAMPolicyStatement._check_conditions = check_conditions  # type: ignore[method-assign]
ac.IAMRequestBase.check_action_permitted = check_action_permitted  # type: ignore[method-assign]

if __name__ == "__main__":
    from moto.server import main

    main(sys.argv[1:])
