"""The analysis's CloudFormation template, generated from its blueprint (pure).

One stack per analysis: the bucket (public access blocked, encrypted), the instance role and
profile the runners get, the dispatcher (a Lambda function on S3 submission events plus a
sweep every minute) with its own least-privilege role, and per group an IAM group whose users
may write their own ``inputs/``, ``configs/``, ``submissions/`` and read their own prefix.
What things are called is in ``names.py``, what each role may do in ``policies.py``.

Two switches leave parts out (``TemplateOptions``): ``bucket`` when the bucket already exists
outside the stack (provisioned by ``ncaas-dev run``/``up`` on LocalStack), and ``dispatcher``
when the Lambda cannot run (LocalStack community): the local SQS loop serves the bucket then.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ...blueprint import Blueprint
from ...layout import CANCEL_SUFFIX, SUBMISSION_SUFFIX, group_prefix
from .batch import BatchOptions, batch_resources
from .names import (
    BUCKET,
    DISPATCHER_FUNCTION,
    DISPATCHER_LOGS,
    DISPATCHER_ROLE,
    INSTANCE_PROFILE,
    INSTANCE_ROLE,
    S3_INVOKE_PERMISSION,
    SWEEP_PERMISSION,
    SWEEP_RULE,
    dispatcher_function_name,
    dispatcher_role_name,
    group_name,
    instance_profile_name,
    instance_role_name,
    logical_id,
    user_name,
)
from .policies import arn, dispatcher_policy, group_policy, instance_policy, trust_policy

Doc = dict[str, Any]

LAMBDA_RUNTIME = "python3.12"
LAMBDA_HANDLER = "ncaas_dev.cloud.deploy.lambda_handler.handler"
LAMBDA_TIMEOUT_S = 300  # a sweep of a busy analysis reads every open job's status
SWEEP_SCHEDULE = "rate(1 minute)"
SWEEP_EVENT = {"ncaas": "sweep"}  # the sweep rule's input, recognised by the handler


@dataclass(frozen=True)
class CodeLocation:
    """Where the dispatcher's zipped code lies (uploaded by ``package``)."""

    bucket: str
    key: str


@dataclass(frozen=True)
class TemplateOptions:
    bucket: bool = True  # the stack creates and owns the bucket
    dispatcher: CodeLocation | None = None  # the Lambda dispatcher, or none (local SQS loop)
    cognito: bool = False  # the web client's user pool (AWS only: LocalStack's community lacks it)
    batch: BatchOptions | None = None  # the AWS Batch launcher's resources (batch.py)


# Spelled the same in a template and in S3's own API (bucket.py sets them on a bucket outside it).
PUBLIC_ACCESS_BLOCK: Doc = {
    "BlockPublicAcls": True,
    "BlockPublicPolicy": True,
    "IgnorePublicAcls": True,
    "RestrictPublicBuckets": True,
}
ABORT_INCOMPLETE_UPLOADS: Doc = {
    "Id": "abort-incomplete-uploads",
    "Status": "Enabled",
    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
}


def submission_filter(group: str, suffix: str = SUBMISSION_SUFFIX) -> list[Doc]:
    """The key filter of a group's submissions (or cancel requests: ``suffix``), for one S3
    notification rule per group and suffix (S3 refuses overlapping rules; the groups'
    prefixes are apart, and so are the two suffixes)."""
    return [
        {"Name": "prefix", "Value": group_prefix(group, "submissions")},
        {"Name": "suffix", "Value": suffix},
    ]


def _bucket(blueprint: Blueprint, options: TemplateOptions) -> Doc:
    properties: Doc = {
        "BucketName": blueprint.bucket,
        "PublicAccessBlockConfiguration": PUBLIC_ACCESS_BLOCK,
        "BucketEncryption": {
            "ServerSideEncryptionConfiguration": [
                {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
            ]
        },
        "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
        # A killed upload leaves its multipart parts behind, invisible and billed; drop them.
        "LifecycleConfiguration": {"Rules": [ABORT_INCOMPLETE_UPLOADS]},
        # The web client (`ncaas-dev web`) PUTs presigned parts from the browser and reads
        # each part's ETag: its origin may do that, and nothing else.
        "CorsConfiguration": {
            "CorsRules": [
                {
                    "Id": "ncaas-web",
                    "AllowedOrigins": ["http://127.0.0.1:8765", "http://localhost:8765"],
                    "AllowedMethods": ["GET", "PUT", "HEAD"],
                    "AllowedHeaders": ["*"],
                    "ExposedHeaders": ["ETag"],
                    "MaxAge": 3000,
                }
            ]
        },
        "Tags": [{"Key": "ncaas:analysis", "Value": blueprint.analysis}],
    }
    resource: Doc = {
        "Type": "AWS::S3::Bucket",
        # Users' data outlives the stack: deleting the stack leaves the bucket. A create that
        # rolls back holds no data yet and removes it, so the next deploy can create it again.
        "DeletionPolicy": "RetainExceptOnCreate",
        "UpdateReplacePolicy": "Retain",
        "Properties": properties,
    }
    if options.dispatcher is not None:
        properties["NotificationConfiguration"] = {
            "LambdaConfigurations": [
                {
                    "Event": "s3:ObjectCreated:*",
                    "Function": {"Fn::GetAtt": [DISPATCHER_FUNCTION, "Arn"]},
                    "Filter": {"S3Key": {"Rules": submission_filter(g.name, suffix)}},
                }
                for g in blueprint.groups
                for suffix in (SUBMISSION_SUFFIX, CANCEL_SUFFIX)
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
                # One dispatcher at a time: two could each see room under the cap and both
                # launch. S3 and EventBridge invocations that find it busy queue and retry.
                "ReservedConcurrentExecutions": 1,
                "Environment": {
                    "Variables": {"NCAAS_ANALYSIS": analysis, "NCAAS_BUCKET": blueprint.bucket}
                },
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
                "SourceArn": arn("s3", blueprint.bucket),
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
                        "PolicyDocument": group_policy(blueprint.bucket, group.name),
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
        "BucketName": {"Value": blueprint.bucket},
        "InstanceProfileName": {"Value": {"Ref": INSTANCE_PROFILE}},
        "InstanceRoleArn": {"Value": {"Fn::GetAtt": [INSTANCE_ROLE, "Arn"]}},
        "DispatcherRoleArn": {"Value": {"Fn::GetAtt": [DISPATCHER_ROLE, "Arn"]}},
    }
    if options.dispatcher is not None:
        outputs["DispatcherFunctionName"] = {"Value": {"Ref": DISPATCHER_FUNCTION}}
    if options.cognito:  # the web client's sign-in (cognito.py)
        from .cognito import cognito_resources

        pool_resources, pool_outputs = cognito_resources(blueprint)
        resources.update(pool_resources)
        outputs.update(pool_outputs)
    doc: Doc = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"ncaas-dev analysis {analysis}: bucket, group access, dispatcher, runners",
        "Resources": resources,
        "Outputs": outputs,
    }
    if options.batch is not None:
        more, more_outputs, parameters = batch_resources(blueprint, options.batch, DISPATCHER_ROLE)
        resources.update(more)
        outputs.update(more_outputs)
        if parameters:
            doc["Parameters"] = parameters
    return doc
