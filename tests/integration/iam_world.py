"""The stack's principals in a moto server that enforces IAM, for the access proofs.

``moto_server`` starts ``moto_iam_server.py`` (moto's server with the request context and
conditions AWS evaluates: see its docstring) on a free loopback port, authorisation off for
the setup (``INITIAL_NO_AUTH_ACTION_COUNT``). ``build_world`` creates the groups, users and
roles of the template ``render_template`` generates, with their policies, intrinsics resolved
as CloudFormation would, then switches enforcement on (``/moto-api/reset-auth`` with 0): from
then on each group user acts with their own access keys, each role with ``AssumeRole``'s
credentials, and a ``scene-setter`` user holding ``*`` arranges what a test needs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from waiting import free_port  # tests/ is on sys.path: pytest's rootdir conftest

from ncaas_dev.blueprint import Blueprint
from ncaas_dev.cloud.deploy import names as n
from ncaas_dev.cloud.deploy import template as t

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
SERVER = Path(__file__).with_name("moto_iam_server.py")


def resolve(value: Any, refs: dict[str, str], arns: dict[str, str]) -> Any:
    """CloudFormation's intrinsics, as far as the policies use them."""
    if isinstance(value, list):
        return [resolve(v, refs, arns) for v in value]
    if not isinstance(value, dict):
        return value
    if "Fn::Sub" in value:
        pseudo = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT}
        return re.sub(r"\$\{([^}]+)\}", lambda m: pseudo[m.group(1)], value["Fn::Sub"])
    if "Fn::GetAtt" in value:
        return arns[value["Fn::GetAtt"][0]]
    if "Ref" in value:
        return refs[value["Ref"]]
    return {k: resolve(v, refs, arns) for k, v in value.items()}


@dataclass
class Moto:
    endpoint: str
    process: subprocess.Popen[bytes]

    def client(self, service: str, key: str = "admin", secret: str = "admin", token: Any = None):  # type: ignore[no-untyped-def]
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            aws_session_token=token,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def enforce(self) -> None:
        request = urllib.request.Request(
            f"{self.endpoint}/moto-api/reset-auth",
            data=b"0",
            method="POST",
            headers={"Content-Type": "text/plain"},  # a form body would be parsed away
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            assert json.loads(reply.read())["status"] == "ok"


@pytest.fixture(scope="module")
def moto_server() -> Iterator[Moto]:
    port = free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "1000000"}  # setup first, unchecked
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        env.pop(name, None)
    process = subprocess.Popen(
        [sys.executable, str(SERVER), "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError(f"moto server did not start on {endpoint}") from None
            time.sleep(0.2)
    yield Moto(endpoint, process)
    process.terminate()
    process.wait(timeout=10)


@dataclass
class Principal:
    name: str
    s3: Any
    ec2: Any
    iam: Any
    credentials: dict[str, str]  # AccessKeyId, SecretAccessKey and SessionToken (roles)

    def environment(self, endpoint: str) -> dict[str, str]:
        """The environment a process acting as this principal gets (as on EC2 or Lambda:
        no endpoint override of ncaas-dev's own, boto3 reads AWS_ENDPOINT_URL itself)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "NCAAS_"))}
        env.update(
            AWS_ENDPOINT_URL=endpoint,
            AWS_REGION=REGION,
            AWS_DEFAULT_REGION=REGION,
            AWS_ACCESS_KEY_ID=self.credentials["AccessKeyId"],
            AWS_SECRET_ACCESS_KEY=self.credentials["SecretAccessKey"],
            AWS_EC2_METADATA_DISABLED="true",
        )
        if self.credentials.get("SessionToken"):
            env["AWS_SESSION_TOKEN"] = self.credentials["SessionToken"]
        return env


@dataclass
class World:
    credentials: dict[str, dict[str, str]]  # assumed-role credentials by logical id
    admin: Principal  # may do anything: sets the scene after enforcement is on
    template: dict[str, Any]
    policies: dict[str, dict[str, Any]]  # logical id -> resolved policy document
    users: dict[str, Principal]  # by blueprint user name
    roles: dict[str, Principal]  # by logical id
    role_arns: dict[str, str]


def _principal(moto: Moto, name: str, creds: dict[str, str]) -> Principal:
    args = (creds["AccessKeyId"], creds["SecretAccessKey"], creds.get("SessionToken"))
    return Principal(
        name,
        moto.client("s3", *args),
        moto.client("ec2", *args),
        moto.client("iam", *args),
        creds,
    )


def build_world(moto: Moto, blueprint: Blueprint) -> World:
    """The template's roles, groups and users (with their policies) created unchecked, an
    all-powerful scene-setter beside them, then enforcement switched on."""
    template = t.render_template(
        blueprint, t.TemplateOptions(dispatcher=t.CodeLocation(blueprint.bucket, "k"))
    )
    resources = template["Resources"]
    iam, sts = moto.client("iam"), moto.client("sts")
    refs: dict[str, str] = {}
    arns: dict[str, str] = {}
    for logical in (n.INSTANCE_ROLE, n.DISPATCHER_ROLE):
        props = resources[logical]["Properties"]
        role = iam.create_role(
            RoleName=props["RoleName"],
            AssumeRolePolicyDocument=json.dumps(props["AssumeRolePolicyDocument"]),
        )["Role"]
        refs[logical], arns[logical] = props["RoleName"], role["Arn"]
    policies: dict[str, dict[str, Any]] = {}
    for logical in (n.INSTANCE_ROLE, n.DISPATCHER_ROLE):
        props = resources[logical]["Properties"]
        (policy,) = props["Policies"]
        document = resolve(policy["PolicyDocument"], refs, arns)
        policies[logical] = document
        iam.put_role_policy(
            RoleName=props["RoleName"],
            PolicyName=policy["PolicyName"],
            PolicyDocument=json.dumps(document),
        )
    for logical, resource in resources.items():
        if resource["Type"] == "AWS::IAM::Group":
            props = resource["Properties"]
            iam.create_group(GroupName=props["GroupName"])
            refs[logical] = props["GroupName"]
            (policy,) = props["Policies"]
            document = resolve(policy["PolicyDocument"], refs, arns)
            policies[logical] = document
            iam.put_group_policy(
                GroupName=props["GroupName"],
                PolicyName=policy["PolicyName"],
                PolicyDocument=json.dumps(document),
            )
    users: dict[str, Principal] = {}
    for resource in resources.values():
        if resource["Type"] == "AWS::IAM::User":
            props = resource["Properties"]
            iam.create_user(UserName=props["UserName"])
            for group in props["Groups"]:
                iam.add_user_to_group(GroupName=refs[group["Ref"]], UserName=props["UserName"])
            key = iam.create_access_key(UserName=props["UserName"])["AccessKey"]
            # "spike-access-labA-alice" -> "alice"
            users[props["UserName"].split("-")[-1]] = _principal(moto, props["UserName"], key)
    sessions: dict[str, dict[str, str]] = {}
    for logical in (n.INSTANCE_ROLE, n.DISPATCHER_ROLE):
        sessions[logical] = sts.assume_role(RoleArn=arns[logical], RoleSessionName="proof")[
            "Credentials"
        ]
    roles = {logical: _principal(moto, logical, c) for logical, c in sessions.items()}
    iam.create_user(UserName="scene-setter")
    everything = {"Effect": "Allow", "Action": "*", "Resource": "*"}
    iam.put_user_policy(
        UserName="scene-setter",
        PolicyName="all",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [everything]}),
    )
    key = iam.create_access_key(UserName="scene-setter")["AccessKey"]
    admin = _principal(moto, "scene-setter", key)
    moto.enforce()
    return World(sessions, admin, template, policies, users, roles, arns)
