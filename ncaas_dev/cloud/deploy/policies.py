"""The IAM policy documents of the stack (pure): who may assume a role, and what a group's users,
the runners and the dispatcher may each do, only in the analysis's own bucket."""

from __future__ import annotations

from typing import Any

from ...blueprint import Blueprint
from ...layout import (
    INTERNAL_PREFIX,
    OPEN_PREFIX,
    POINTER_SUFFIX,
    SUBMISSION_SUFFIX,
    group_prefix,
    submissions_prefix,
)
from ..layout import TAG_BUCKET
from .names import INSTANCE_ROLE, dispatcher_function_name

Doc = dict[str, Any]

# Users upload, users read: the folders they may write, and the ones they may read.
USER_WRITABLE = ("inputs", "configs", "submissions")
USER_READABLE = ("inputs", "configs", "submissions", "results")
LEDGER_PREFIX = f"{INTERNAL_PREFIX}/ledger/"  # runners charge their group's budget here


def arn(service: str, resource: str) -> Doc:
    """The ARN of an S3 bucket or object pattern, in whichever partition the stack runs."""
    return {"Fn::Sub": f"arn:${{AWS::Partition}}:{service}:::{resource}"}


def _objects(bucket: str, *paths: str) -> list[Doc]:
    return [arn("s3", f"{bucket}/{p}*") for p in paths]


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
            "Resource": arn("s3", bucket),
            "Condition": {"StringLike": {"s3:prefix": [f"{group}/", f"{group}/*"]}},
        },
        {
            "Sid": "FindTheBucket",
            "Effect": "Allow",
            "Action": ["s3:GetBucketLocation"],
            "Resource": arn("s3", bucket),
        },
    )


def dataset_listing(bucket: str, groups: list[str]) -> Doc:
    """ListBucket for a folder dataset (a ``dataname`` ending in /): only with a prefix inside
    a group's ``inputs/``, the narrowest a role every instance shares can say (a runner knows
    its dataset's prefix; IAM cannot know which job an instance runs)."""
    return {
        "Sid": "ListFolderDatasetsInInputsOnly",
        "Effect": "Allow",
        "Action": ["s3:ListBucket"],
        "Resource": arn("s3", bucket),
        "Condition": {
            "StringLike": {"s3:prefix": [group_prefix(g, "inputs") + "*" for g in groups]}
        },
    }


def instance_policy(blueprint: Blueprint) -> Doc:
    """A runner: read inputs and configs (list a folder dataset under inputs/), write results
    (status.json is read-modify-write), and charge its group's budget ledger; nothing else,
    and only in this bucket."""
    bucket = blueprint.bucket
    groups = [g.name for g in blueprint.groups]
    return _policy(
        dataset_listing(bucket, groups),
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
        {
            "Sid": "CloseEndedJobs",  # drop a job it ended from the index of open jobs
            "Effect": "Allow",
            "Action": ["s3:DeleteObject"],
            "Resource": _objects(bucket, OPEN_PREFIX),
        },
    )


def _ec2(resource: str) -> Doc:
    return {"Fn::Sub": f"arn:${{AWS::Partition}}:ec2:*:*:{resource}"}


def run_instances_statements(blueprint: Blueprint) -> list[Doc]:
    """RunInstances of the blueprint's AMI (any baked one until bake has run), its instance
    type, tagged with its bucket; and the volume, network interface, subnet and security
    group every launch also names."""
    ami = blueprint.cloud.ami or "*"
    return [
        {
            "Sid": "RunTheBakedAmiOnly",
            "Effect": "Allow",
            "Action": ["ec2:RunInstances"],
            "Resource": {"Fn::Sub": f"arn:${{AWS::Partition}}:ec2:*::image/{ami}"},
        },
        {
            "Sid": "RunItsInstanceTypeTaggedWithItsBucket",
            "Effect": "Allow",
            "Action": ["ec2:RunInstances"],
            "Resource": _ec2("instance/*"),
            "Condition": {
                "StringEquals": {
                    "ec2:InstanceType": list(
                        dict.fromkeys(
                            [blueprint.cloud.instance_type, *blueprint.cloud.allowed_instance_types]
                        )
                    ),
                    f"aws:RequestTag/{TAG_BUCKET}": blueprint.bucket,
                }
            },
        },
        {
            "Sid": "WithItsVolumeAndNetwork",
            "Effect": "Allow",
            "Action": ["ec2:RunInstances"],
            "Resource": [
                _ec2(r) for r in ("volume/*", "network-interface/*", "subnet/*", "security-group/*")
            ],
        },
    ]


def dispatcher_policy(blueprint: Blueprint) -> Doc:
    """The dispatcher: read submissions (and head the inputs they name), write job folders and
    its own records, start and watch tagged instances with the instance role, terminate them on
    a cancel request, write its logs."""
    bucket = blueprint.bucket
    groups = [g.name for g in blueprint.groups]
    function = dispatcher_function_name(blueprint.analysis)
    return _policy(
        {
            "Sid": "ListTheBucket",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": arn("s3", bucket),
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
            "Sid": "PointSubmissionsAtTheirJobs",  # {id}_submit.json.job, nothing else there
            "Effect": "Allow",
            "Action": ["s3:PutObject"],
            "Resource": [
                arn("s3", f"{bucket}/{submissions_prefix(g)}*{SUBMISSION_SUFFIX}{POINTER_SUFFIX}")
                for g in groups
            ],
        },
        {
            "Sid": "CloseEndedJobs",  # drop ended jobs from the index of open jobs
            "Effect": "Allow",
            "Action": ["s3:DeleteObject"],
            "Resource": _objects(bucket, OPEN_PREFIX),
        },
        {
            "Sid": "WatchInstances",  # Describe* take no resource-level permissions
            "Effect": "Allow",
            "Action": [
                "ec2:DescribeInstances",
                "ec2:DescribeImages",
                "ec2:DescribeInstanceTypeOfferings",
            ],
            "Resource": "*",
        },
        *run_instances_statements(blueprint),
        {
            "Sid": "TagInstancesAtLaunch",
            "Effect": "Allow",
            "Action": ["ec2:CreateTags"],
            "Resource": "*",
            "Condition": {"StringEquals": {"ec2:CreateAction": "RunInstances"}},
        },
        {
            "Sid": "TerminateItsOwnInstances",  # a cancel request stops a dataset's instance
            "Effect": "Allow",
            "Action": ["ec2:TerminateInstances"],
            "Resource": _ec2("instance/*"),
            "Condition": {"StringEquals": {f"aws:ResourceTag/{TAG_BUCKET}": bucket}},
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
