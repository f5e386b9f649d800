"""The analysis's CloudFormation template, generated from its blueprint (pure).

One stack per analysis: the bucket (public access blocked, encrypted), the instance role and
profile the runners get, the dispatcher (a Lambda function on S3 submission events plus a
sweep every minute) with its own least-privilege role, and per group an IAM group whose users
may write their own ``inputs/``, ``configs/``, ``submissions/`` and read their own prefix.

Two switches leave parts out (``TemplateOptions``): ``bucket`` when the bucket already exists
outside the stack (provisioned by ``ncaas-dev run``/``up`` on LocalStack), and ``dispatcher``
when the Lambda cannot run (LocalStack community): the local SQS loop serves the bucket then.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from ...blueprint import Blueprint
from ...layout import INTERNAL_PREFIX, SUBMISSION_SUFFIX, group_prefix

Doc = dict[str, Any]

LAMBDA_RUNTIME = "python3.12"
LAMBDA_HANDLER = "ncaas_dev.cloud.deploy.lambda_handler.handler"
LAMBDA_TIMEOUT_S = 300  # a sweep of a busy analysis reads every open job's status
SWEEP_SCHEDULE = "rate(1 minute)"
SWEEP_EVENT = {"ncaas": "sweep"}  # the sweep rule's input, recognised by the handler
# Users upload, users read: the folders they may write, and the ones they may read.
USER_WRITABLE = ("inputs", "configs", "submissions")
USER_READABLE = ("inputs", "configs", "submissions", "results")
LEDGER_PREFIX = f"{INTERNAL_PREFIX}/ledger/"  # runners charge their group's budget here

BUCKET = "AnalysisBucket"
INSTANCE_ROLE = "InstanceRole"
INSTANCE_PROFILE = "InstanceProfile"
DISPATCHER_ROLE = "DispatcherRole"
DISPATCHER_FUNCTION = "DispatcherFunction"
DISPATCHER_LOGS = "DispatcherLogGroup"
S3_INVOKE_PERMISSION = "DispatcherS3Permission"
SWEEP_RULE = "SweepRule"
SWEEP_PERMISSION = "SweepPermission"


@dataclass(frozen=True)
class CodeLocation:
    """Where the dispatcher's zipped code lies (uploaded by ``package``)."""

    bucket: str
    key: str


@dataclass(frozen=True)
class TemplateOptions:
    bucket: bool = True  # the stack creates and owns the bucket
    dispatcher: CodeLocation | None = None  # the Lambda dispatcher, or none (local SQS loop)


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


def _arn(service: str, resource: str) -> Doc:
    return {"Fn::Sub": f"arn:${{AWS::Partition}}:{service}:::{resource}"}


def _objects(bucket: str, *paths: str) -> list[Doc]:
    return [_arn("s3", f"{bucket}/{p}*") for p in paths]


def _policy(*statements: Doc) -> Doc:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def trust_policy(service: str) -> Doc:
    """Who may assume a role: ``service`` (e.g. ec2.amazonaws.com)."""
    return _policy(
        {
            "Effect": "Allow",
            "Principal": {"Service": service},
            "Action": "sts:AssumeRole",
        }
    )


def group_policy(bucket: str, group: str) -> Doc:
    """A group's users: write their uploads and submissions, read and list their own prefix."""
    return _policy(
        {
            "Sid": "WriteOwnUploadsAndSubmissions",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
            "Resource": _objects(bucket, *(group_prefix(group, f) for f in USER_WRITABLE)),
        },
        {
            "Sid": "ReadOwnFolders",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": _objects(bucket, *(group_prefix(group, f) for f in USER_READABLE)),
        },
        {
            "Sid": "ListOwnPrefixOnly",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": _arn("s3", bucket),
            "Condition": {"StringLike": {"s3:prefix": [f"{group}/", f"{group}/*"]}},
        },
        {
            "Sid": "FindTheBucket",
            "Effect": "Allow",
            "Action": ["s3:GetBucketLocation"],
            "Resource": _arn("s3", bucket),
        },
    )


def instance_policy(blueprint: Blueprint) -> Doc:
    """A runner: read inputs and configs, write results (status.json is read-modify-write),
    and charge its group's budget ledger; nothing else, and only in this bucket."""
    bucket = blueprint.analysis
    groups = [g.name for g in blueprint.groups]
    return _policy(
        {
            "Sid": "ReadInputsAndConfigs",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": _objects(
                bucket,
                *(group_prefix(g, f) for g in groups for f in ("inputs", "configs", "results")),
                LEDGER_PREFIX,
            ),
        },
        {
            "Sid": "WriteResults",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
            "Resource": _objects(
                bucket, *(group_prefix(g, "results") for g in groups), LEDGER_PREFIX
            ),
        },
    )


def dispatcher_policy(blueprint: Blueprint) -> Doc:
    """The dispatcher: read submissions (and head the inputs they name), write job folders and
    its own records, start and watch tagged instances with the instance role, write its logs."""
    bucket = blueprint.analysis
    groups = [g.name for g in blueprint.groups]
    function = dispatcher_function_name(bucket)
    return _policy(
        {
            "Sid": "ListTheBucket",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": _arn("s3", bucket),
        },
        {
            "Sid": "ReadSubmissionsInputsAndRecords",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": _objects(
                bucket,
                *(group_prefix(g, f) for g in groups for f in USER_READABLE),
                f"{INTERNAL_PREFIX}/",
            ),
        },
        {
            "Sid": "WriteJobFoldersAndRecords",
            "Effect": "Allow",
            "Action": ["s3:PutObject"],
            "Resource": _objects(
                bucket, *(group_prefix(g, "results") for g in groups), f"{INTERNAL_PREFIX}/"
            ),
        },
        {
            "Sid": "StartAndWatchInstances",
            "Effect": "Allow",
            "Action": ["ec2:RunInstances", "ec2:DescribeInstances", "ec2:DescribeImages"],
            "Resource": "*",
        },
        {
            "Sid": "TagInstancesAtLaunch",
            "Effect": "Allow",
            "Action": ["ec2:CreateTags"],
            "Resource": "*",
            "Condition": {"StringEquals": {"ec2:CreateAction": "RunInstances"}},
        },
        {
            "Sid": "PassTheInstanceRoleOnly",
            "Effect": "Allow",
            "Action": ["iam:PassRole"],
            "Resource": {"Fn::GetAtt": [INSTANCE_ROLE, "Arn"]},
            "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        },
        {
            "Sid": "WriteOwnLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": {
                "Fn::Sub": (
                    "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:"
                    f"log-group:/aws/lambda/{function}:*"
                )
            },
        },
    )


ABORT_INCOMPLETE_UPLOADS: Doc = {
    "Id": "abort-incomplete-uploads",
    "Status": "Enabled",
    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
}


def _bucket(blueprint: Blueprint, options: TemplateOptions) -> Doc:
    properties: Doc = {
        "BucketName": blueprint.analysis,
        "PublicAccessBlockConfiguration": {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        },
        "BucketEncryption": {
            "ServerSideEncryptionConfiguration": [
                {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
            ]
        },
        "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
        # A killed upload leaves its multipart parts behind, invisible and billed; drop them.
        "LifecycleConfiguration": {"Rules": [ABORT_INCOMPLETE_UPLOADS]},
        "Tags": [{"Key": "ncaas:analysis", "Value": blueprint.analysis}],
    }
    resource: Doc = {
        "Type": "AWS::S3::Bucket",
        # Users' data outlives the stack: deleting the stack leaves the bucket.
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": properties,
    }
    if options.dispatcher is not None:
        # One rule per group: S3 refuses overlapping rules, and the groups' prefixes are apart.
        properties["NotificationConfiguration"] = {
            "LambdaConfigurations": [
                {
                    "Event": "s3:ObjectCreated:*",
                    "Function": {"Fn::GetAtt": [DISPATCHER_FUNCTION, "Arn"]},
                    "Filter": {
                        "S3Key": {
                            "Rules": [
                                {"Name": "prefix", "Value": group_prefix(g.name, "submissions")},
                                {"Name": "suffix", "Value": SUBMISSION_SUFFIX},
                            ]
                        }
                    },
                }
                for g in blueprint.groups
            ]
        }
        # S3 checks it may invoke the function when the notification is set.
        resource["DependsOn"] = [S3_INVOKE_PERMISSION]
    return resource


def _dispatcher(blueprint: Blueprint, code: CodeLocation) -> Doc:
    analysis = blueprint.analysis
    function = dispatcher_function_name(analysis)
    return {
        DISPATCHER_LOGS: {
            "Type": "AWS::Logs::LogGroup",
            "DeletionPolicy": "Delete",
            "UpdateReplacePolicy": "Delete",
            "Properties": {"LogGroupName": f"/aws/lambda/{function}", "RetentionInDays": 30},
        },
        DISPATCHER_FUNCTION: {
            "Type": "AWS::Lambda::Function",
            "DependsOn": [DISPATCHER_LOGS],
            "Properties": {
                "FunctionName": function,
                "Description": f"ncaas-dev dispatcher of {analysis}",
                "Runtime": LAMBDA_RUNTIME,
                "Architectures": ["x86_64"],
                "Handler": LAMBDA_HANDLER,
                "Code": {"S3Bucket": code.bucket, "S3Key": code.key},
                "Role": {"Fn::GetAtt": [DISPATCHER_ROLE, "Arn"]},
                "Timeout": LAMBDA_TIMEOUT_S,
                "MemorySize": 512,
                "Environment": {"Variables": {"NCAAS_ANALYSIS": analysis}},
                "Tags": [{"Key": "ncaas:analysis", "Value": analysis}],
            },
        },
        S3_INVOKE_PERMISSION: {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "Action": "lambda:InvokeFunction",
                "FunctionName": {"Ref": DISPATCHER_FUNCTION},
                "Principal": "s3.amazonaws.com",
                # The bucket's ARN by name, not GetAtt: the bucket depends on this permission.
                "SourceArn": _arn("s3", analysis),
                "SourceAccount": {"Ref": "AWS::AccountId"},
            },
        },
        SWEEP_RULE: {
            "Type": "AWS::Events::Rule",
            "Properties": {
                "Description": f"ncaas-dev: launch {analysis}'s datasets waiting for a slot",
                "ScheduleExpression": SWEEP_SCHEDULE,
                "State": "ENABLED",
                "Targets": [
                    {
                        "Id": "sweep",
                        "Arn": {"Fn::GetAtt": [DISPATCHER_FUNCTION, "Arn"]},
                        "Input": json.dumps(SWEEP_EVENT),
                    }
                ],
            },
        },
        SWEEP_PERMISSION: {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "Action": "lambda:InvokeFunction",
                "FunctionName": {"Ref": DISPATCHER_FUNCTION},
                "Principal": "events.amazonaws.com",
                "SourceArn": {"Fn::GetAtt": [SWEEP_RULE, "Arn"]},
            },
        },
    }


def _groups(blueprint: Blueprint) -> Doc:
    analysis = blueprint.analysis
    resources: Doc = {}
    for group in blueprint.groups:
        group_id = logical_id("Group", group.name)
        resources[group_id] = {
            "Type": "AWS::IAM::Group",
            "Properties": {
                "GroupName": group_name(analysis, group.name),
                "Policies": [
                    {
                        "PolicyName": "ncaas-group-access",
                        "PolicyDocument": group_policy(analysis, group.name),
                    }
                ],
            },
        }
        for user in group.users:
            resources[logical_id("User", group.name, user)] = {
                "Type": "AWS::IAM::User",
                "Properties": {
                    "UserName": user_name(analysis, group.name, user),
                    "Groups": [{"Ref": group_id}],
                    "Tags": [
                        {"Key": "ncaas:analysis", "Value": analysis},
                        {"Key": "ncaas:group", "Value": group.name},
                    ],
                },
            }
    return resources


def render_template(blueprint: Blueprint, options: TemplateOptions | None = None) -> Doc:
    """The stack of one analysis (a JSON-ready dict)."""
    options = options or TemplateOptions()
    analysis = blueprint.analysis
    resources: Doc = {}
    if options.bucket:
        resources[BUCKET] = _bucket(blueprint, options)
    resources[INSTANCE_ROLE] = {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "RoleName": instance_role_name(analysis),
            "Description": f"ncaas-dev runners of {analysis}: read inputs, write results",
            "AssumeRolePolicyDocument": trust_policy("ec2.amazonaws.com"),
            "Policies": [
                {"PolicyName": "ncaas-runner", "PolicyDocument": instance_policy(blueprint)}
            ],
        },
    }
    resources[INSTANCE_PROFILE] = {
        "Type": "AWS::IAM::InstanceProfile",
        "Properties": {
            "InstanceProfileName": instance_profile_name(analysis),
            "Roles": [{"Ref": INSTANCE_ROLE}],
        },
    }
    resources[DISPATCHER_ROLE] = {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "RoleName": dispatcher_role_name(analysis),
            "Description": f"ncaas-dev dispatcher of {analysis}",
            "AssumeRolePolicyDocument": trust_policy("lambda.amazonaws.com"),
            "Policies": [
                {"PolicyName": "ncaas-dispatcher", "PolicyDocument": dispatcher_policy(blueprint)}
            ],
        },
    }
    if options.dispatcher is not None:
        resources.update(_dispatcher(blueprint, options.dispatcher))
    resources.update(_groups(blueprint))
    outputs: Doc = {
        "BucketName": {"Value": analysis},
        "InstanceProfileName": {"Value": {"Ref": INSTANCE_PROFILE}},
        "InstanceRoleArn": {"Value": {"Fn::GetAtt": [INSTANCE_ROLE, "Arn"]}},
        "DispatcherRoleArn": {"Value": {"Fn::GetAtt": [DISPATCHER_ROLE, "Arn"]}},
    }
    if options.dispatcher is not None:
        outputs["DispatcherFunctionName"] = {"Value": {"Ref": DISPATCHER_FUNCTION}}
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"ncaas-dev analysis {analysis}: bucket, group access, dispatcher, runners",
        "Resources": resources,
        "Outputs": outputs,
    }
