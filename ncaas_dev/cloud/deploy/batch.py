"""The AWS Batch part of the analysis's stack (pure): compute environment, job queue, job
definition and their roles, for `--launcher batch` in the cloud (docs/batch.md).

- The compute environment is managed, SPOT with SPOT_PRICE_CAPACITY_OPTIMIZED (or on-demand
  EC2 with BEST_FIT_PROGRESSIVE), from 0 vCPUs up to ``batch.max_vcpus``, on the baked AMI
  (baked from the ECS-optimized AMI: Batch hosts need the ECS agent). Batch's own
  service-linked role runs it: no service role of ours.
- The job definition is content-addressed by the image and the blueprint hash: its name
  changes only when one of them does, so an unchanged analysis registers nothing new.
  ``retryStrategy`` retries on a host's loss (``Host EC2*``) and on nothing else.
- Roles as narrow as the EC2 path's: the hosts' instance role only runs the ECS agent; the job
  role (what the runner in the job's container gets) is the EC2 runner's own policy; the
  dispatcher may submit to this queue with this definition, and see and end its jobs.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

from ...blueprint import Blueprint
from ..layout import RUNNER_IMAGE
from .policies import instance_policy, trust_policy

Doc = dict[str, Any]

COMPUTE_ENVIRONMENT = "BatchComputeEnvironment"
JOB_QUEUE = "BatchJobQueue"
JOB_DEFINITION = "BatchJobDefinition"
HOST_ROLE = "BatchHostRole"
HOST_PROFILE = "BatchHostProfile"
JOB_ROLE = "BatchJobRole"
DISPATCHER_BATCH_POLICY = "DispatcherBatchPolicy"
SUBNETS_PARAMETER = "BatchSubnets"
# The ECS agent's own permissions on a Batch host (register, pull, logs): AWS's managed policy.
ECS_HOST_POLICY = (
    "arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"
)
STAGING_MARGIN_S = 600  # as launchers/batchjob.py: fetching and uploading past run.timeout
# On the baked AMI: the scratch folder the analysis binds (the runner image: layout.py).
SCRATCH = "/var/lib/ncaas/jobs"
MIB = 1024**2


@dataclass(frozen=True)
class BatchOptions:
    image_id: str  # the analysis image the AMI carries
    content_hash: str  # the blueprint's


def definition_name(blueprint: Blueprint, options: BatchOptions) -> str:
    digest = hashlib.sha256(f"{options.image_id}|{options.content_hash}".encode()).hexdigest()
    return f"ncaas-{blueprint.analysis}-{digest[:16]}"[:128]


def _sub(text: str) -> Doc:
    return {"Fn::Sub": text}


def _compute_environment(blueprint: Blueprint) -> Doc:
    spot = blueprint.batch.spot
    resources: Doc = {
        "Type": "SPOT" if spot else "EC2",
        "AllocationStrategy": "SPOT_PRICE_CAPACITY_OPTIMIZED" if spot else "BEST_FIT_PROGRESSIVE",
        "MinvCpus": 0,
        "MaxvCpus": blueprint.batch.max_vcpus,
        "InstanceTypes": blueprint.batch.chosen_types(blueprint.cloud),
        "InstanceRole": {"Fn::GetAtt": [HOST_PROFILE, "Arn"]},
        "Subnets": [blueprint.cloud.subnet_id]
        if blueprint.cloud.subnet_id
        else {"Ref": SUBNETS_PARAMETER},
        "Tags": {"ncaas:analysis": blueprint.analysis},
    }
    if blueprint.cloud.security_group_ids:
        resources["SecurityGroupIds"] = list(blueprint.cloud.security_group_ids)
    if blueprint.cloud.ami:
        resources["Ec2Configuration"] = [
            {"ImageType": "ECS_AL2023", "ImageIdOverride": blueprint.cloud.ami}
        ]
    return {
        "Type": "AWS::Batch::ComputeEnvironment",
        "Properties": {
            "ComputeEnvironmentName": f"ncaas-{blueprint.analysis}",
            "Type": "MANAGED",
            "State": "ENABLED",
            "ComputeResources": resources,
        },
    }


def _job_definition(blueprint: Blueprint, options: BatchOptions) -> Doc:
    res = blueprint.resources
    needs = [
        {"Type": "VCPU", "Value": str(max(1, math.ceil(res.cpus)))},
        {"Type": "MEMORY", "Value": str(max(4, math.ceil(res.memory / MIB)))},
    ]
    if res.gpu:
        needs.append({"Type": "GPU", "Value": "1"})
    volumes = [("docker", "/var/run/docker.sock"), ("jobs", SCRATCH)]
    return {
        "Type": "AWS::Batch::JobDefinition",
        "Properties": {
            "JobDefinitionName": definition_name(blueprint, options),
            "Type": "container",
            "PropagateTags": True,
            "Tags": {"ncaas:analysis": blueprint.analysis},
            "ContainerProperties": {
                "Image": RUNNER_IMAGE,
                "Command": [
                    "sh",
                    "-c",
                    'printf %s "$NCAAS_TASK" > /tmp/ncaas-task.json && exec python3 -m '
                    'ncaas_dev.runner /tmp/ncaas-task.json "batch:$AWS_BATCH_JOB_ID"',
                ],
                "JobRoleArn": {"Fn::GetAtt": [JOB_ROLE, "Arn"]},
                "ResourceRequirements": needs,
                "Environment": [{"Name": "NCAAS_STATE_DIR", "Value": "/var/lib/ncaas"}],
                "Volumes": [{"Name": n, "Host": {"SourcePath": p}} for n, p in volumes],
                "MountPoints": [
                    {"SourceVolume": n, "ContainerPath": p, "ReadOnly": False} for n, p in volumes
                ],
            },
            "Timeout": {"AttemptDurationSeconds": blueprint.run.timeout + STAGING_MARGIN_S},
            "RetryStrategy": {
                "Attempts": min(10, blueprint.batch.retries + 1),
                "EvaluateOnExit": [
                    {"OnStatusReason": "Host EC2*", "Action": "RETRY"},
                    {"OnReason": "*", "Action": "EXIT"},
                ],
            },
        },
    }


def dispatcher_batch_policy(blueprint: Blueprint) -> Doc:
    """What the dispatcher may do in Batch: submit to its queue with its definitions, end its
    jobs; the reads Batch grants on ``*`` only."""
    queue = blueprint.batch.job_queue or f"ncaas-{blueprint.analysis}"
    region = "${AWS::Region}:${AWS::AccountId}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "SubmitToItsQueueOnly",
                "Effect": "Allow",
                "Action": ["batch:SubmitJob", "batch:TagResource"],
                "Resource": [
                    _sub(f"arn:${{AWS::Partition}}:batch:{region}:job-queue/{queue}"),
                    _sub(
                        f"arn:${{AWS::Partition}}:batch:{region}:job-definition/"
                        f"ncaas-{blueprint.analysis}-*"
                    ),
                    _sub(f"arn:${{AWS::Partition}}:batch:{region}:job/*"),
                ],
            },
            {
                "Sid": "EndItsJobs",
                "Effect": "Allow",
                "Action": ["batch:TerminateJob"],
                "Resource": _sub(f"arn:${{AWS::Partition}}:batch:{region}:job/*"),
                "Condition": {
                    "StringEquals": {"aws:ResourceTag/ncaas:analysis": blueprint.analysis}
                },
            },
            {
                "Sid": "SeeJobs",  # Batch's List/Describe calls take no resource
                "Effect": "Allow",
                "Action": [
                    "batch:ListJobs",
                    "batch:DescribeJobs",
                    "batch:DescribeJobQueues",
                    "batch:DescribeJobDefinitions",
                    "batch:DescribeComputeEnvironments",
                ],
                "Resource": "*",
            },
        ],
    }


def batch_resources(
    blueprint: Blueprint, options: BatchOptions, dispatcher_role: str
) -> tuple[Doc, Doc, Doc]:
    """(resources, outputs, parameters) to add to the analysis's stack."""
    resources: Doc = {
        HOST_ROLE: {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "Description": f"ncaas-dev Batch hosts of {blueprint.analysis}: the ECS agent",
                "AssumeRolePolicyDocument": trust_policy("ec2.amazonaws.com"),
                "ManagedPolicyArns": [_sub(ECS_HOST_POLICY)],
            },
        },
        HOST_PROFILE: {
            "Type": "AWS::IAM::InstanceProfile",
            "Properties": {"Roles": [{"Ref": HOST_ROLE}]},
        },
        JOB_ROLE: {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "Description": f"ncaas-dev runners of {blueprint.analysis} on Batch",
                "AssumeRolePolicyDocument": trust_policy("ecs-tasks.amazonaws.com"),
                "Policies": [
                    {"PolicyName": "ncaas-runner", "PolicyDocument": instance_policy(blueprint)}
                ],
            },
        },
        COMPUTE_ENVIRONMENT: _compute_environment(blueprint),
        JOB_DEFINITION: _job_definition(blueprint, options),
        DISPATCHER_BATCH_POLICY: {
            "Type": "AWS::IAM::Policy",
            "Properties": {
                "PolicyName": "ncaas-dispatcher-batch",
                "PolicyDocument": dispatcher_batch_policy(blueprint),
                "Roles": [{"Ref": dispatcher_role}],
            },
        },
    }
    outputs: Doc = {"BatchJobDefinition": {"Value": {"Ref": JOB_DEFINITION}}}
    if not blueprint.batch.job_queue:
        resources[JOB_QUEUE] = {
            "Type": "AWS::Batch::JobQueue",
            "Properties": {
                "JobQueueName": f"ncaas-{blueprint.analysis}",
                "State": "ENABLED",
                "Priority": 1,
                "ComputeEnvironmentOrder": [
                    {"Order": 1, "ComputeEnvironment": {"Ref": COMPUTE_ENVIRONMENT}}
                ],
            },
        }
        outputs["BatchJobQueue"] = {"Value": {"Ref": JOB_QUEUE}}
    parameters: Doc = {}
    if not blueprint.cloud.subnet_id:
        parameters[SUBNETS_PARAMETER] = {
            "Type": "List<AWS::EC2::Subnet::Id>",
            "Description": "Subnets of the Batch hosts (or set cloud.subnet_id)",
        }
    return resources, outputs, parameters
