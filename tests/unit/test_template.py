"""The generated CloudFormation template: what it holds, how each policy is scoped, lint-clean."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ncaas_dev.blueprint import Blueprint, parse_blueprint
from ncaas_dev.cloud.deploy import names as n
from ncaas_dev.cloud.deploy import template as t

CODE = t.CodeLocation("spike-detect", ".ncaas/artifacts/dispatcher-abc.zip")


def blueprint(analysis: str = "spike-detect", **extra: Any) -> Blueprint:
    doc = {
        "analysis": analysis,
        "groups": [
            {"name": "labA", "users": ["alice", "bob"]},
            {"name": "lab_B-2", "users": ["carol"]},
            {"name": "empty", "users": []},
        ],
        **extra,
    }
    return parse_blueprint(doc, "test")


def of_type(template: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def arns(value: Any) -> list[str]:
    """Resource ARNs of a statement, with the partition filled in as AWS would."""
    items = value if isinstance(value, list) else [value]
    found = []
    for item in items:
        text = item["Fn::Sub"] if isinstance(item, dict) and "Fn::Sub" in item else item
        found.append(str(text).replace("${AWS::Partition}", "aws") if isinstance(text, str) else "")
    return found


def statement(policy: dict[str, Any], sid: str) -> dict[str, Any]:
    (found,) = [s for s in policy["Statement"] if s.get("Sid") == sid]
    return found


def test_full_stack_holds_every_resource() -> None:
    doc = t.render_template(blueprint(), t.TemplateOptions(dispatcher=CODE))
    kinds = sorted(v["Type"] for v in doc["Resources"].values())
    assert kinds.count("AWS::S3::Bucket") == 1
    assert kinds.count("AWS::IAM::Role") == 2
    assert kinds.count("AWS::IAM::InstanceProfile") == 1
    assert kinds.count("AWS::IAM::Group") == 3
    assert kinds.count("AWS::IAM::User") == 3
    assert kinds.count("AWS::Lambda::Function") == 1
    assert kinds.count("AWS::Lambda::Permission") == 2
    assert kinds.count("AWS::Events::Rule") == 1
    assert doc["Outputs"]["InstanceProfileName"]["Value"] == {"Ref": n.INSTANCE_PROFILE}


def test_bucket_blocks_public_access_encrypts_and_outlives_the_stack() -> None:
    bucket = t.render_template(blueprint())["Resources"][n.BUCKET]
    assert bucket["DeletionPolicy"] == "RetainExceptOnCreate"
    props = bucket["Properties"]
    assert props["BucketName"] == "spike-detect"
    assert all(props["PublicAccessBlockConfiguration"].values())
    assert len(props["PublicAccessBlockConfiguration"]) == 4
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    (lifecycle,) = props["LifecycleConfiguration"]["Rules"]
    assert lifecycle["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}


def test_local_stack_leaves_the_lambda_and_its_notification_out() -> None:
    doc = t.render_template(blueprint(), t.TemplateOptions())
    assert not of_type(doc, "AWS::Lambda::Function")
    assert not of_type(doc, "AWS::Events::Rule")
    assert "NotificationConfiguration" not in doc["Resources"][n.BUCKET]["Properties"]
    assert "DispatcherFunctionName" not in doc["Outputs"]


def test_a_bucket_made_outside_the_stack_is_not_in_it() -> None:
    doc = t.render_template(blueprint(), t.TemplateOptions(bucket=False, dispatcher=CODE))
    assert not of_type(doc, "AWS::S3::Bucket")
    assert doc["Outputs"]["BucketName"]["Value"] == "spike-detect"


def test_each_group_notifies_the_lambda_for_its_own_submissions_and_cancels() -> None:
    doc = t.render_template(blueprint(), t.TemplateOptions(dispatcher=CODE))
    bucket = doc["Resources"][n.BUCKET]
    configs = bucket["Properties"]["NotificationConfiguration"]["LambdaConfigurations"]
    rules = [{r["Name"]: r["Value"] for r in c["Filter"]["S3Key"]["Rules"]} for c in configs]
    assert rules == [
        {"prefix": f"{g}/submissions/", "suffix": suffix}
        for g in ("labA", "lab_B-2", "empty")
        for suffix in ("submit.json", "cancel.json")
    ]
    assert bucket["DependsOn"] == [n.S3_INVOKE_PERMISSION]
    function = doc["Resources"][n.DISPATCHER_FUNCTION]["Properties"]
    assert function["Runtime"] == "python3.12"
    assert function["Handler"] == "ncaas_dev.cloud.deploy.lambda_handler.handler"
    assert function["Code"] == {"S3Bucket": CODE.bucket, "S3Key": CODE.key}
    rule = doc["Resources"][n.SWEEP_RULE]["Properties"]
    assert rule["ScheduleExpression"] == "rate(1 minute)"
    assert json.loads(rule["Targets"][0]["Input"]) == t.SWEEP_EVENT


def test_one_dispatcher_runs_at_a_time() -> None:
    """Issue 13, defect 8: two concurrent dispatchers could each see room under the cap."""
    doc = t.render_template(blueprint(), t.TemplateOptions(dispatcher=CODE))
    function = doc["Resources"][n.DISPATCHER_FUNCTION]["Properties"]
    assert function["ReservedConcurrentExecutions"] == 1


def test_group_users_belong_to_their_group_only() -> None:
    doc = t.render_template(blueprint())
    groups = {v["Properties"]["GroupName"]: k for k, v in of_type(doc, "AWS::IAM::Group").items()}
    users = {
        v["Properties"]["UserName"]: v["Properties"]["Groups"]
        for v in of_type(doc, "AWS::IAM::User").values()
    }
    assert users == {
        "spike-detect-labA-alice": [{"Ref": groups["ncaas-spike-detect-labA"]}],
        "spike-detect-labA-bob": [{"Ref": groups["ncaas-spike-detect-labA"]}],
        "spike-detect-lab_B-2-carol": [{"Ref": groups["ncaas-spike-detect-lab_B-2"]}],
    }


@pytest.mark.parametrize("group", ["labA", "lab_B-2", "empty"])
def test_group_policy_is_scoped_to_its_own_prefix(group: str) -> None:
    doc = t.render_template(blueprint())
    (resource,) = [
        v
        for v in of_type(doc, "AWS::IAM::Group").values()
        if v["Properties"]["GroupName"] == f"ncaas-spike-detect-{group}"
    ]
    policy = resource["Properties"]["Policies"][0]["PolicyDocument"]
    write = statement(policy, "WriteOwnUploadsAndSubmissions")
    assert "s3:PutObject" in write["Action"]
    assert arns(write["Resource"]) == [
        f"arn:aws:s3:::spike-detect/{group}/{f}/*" for f in ("inputs", "configs", "submissions")
    ]
    read = statement(policy, "ReadOwnFolders")
    assert read["Action"] == ["s3:GetObject"]
    assert all(a.startswith(f"arn:aws:s3:::spike-detect/{group}/") for a in arns(read["Resource"]))
    assert f"arn:aws:s3:::spike-detect/{group}/results/*" in arns(read["Resource"])
    listing = statement(policy, "ListOwnPrefixOnly")
    assert arns(listing["Resource"]) == ["arn:aws:s3:::spike-detect"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": [f"{group}/", f"{group}/*"]}}
    # Nothing anywhere lets a user write results, delete, or touch another prefix or bucket.
    for s in policy["Statement"]:
        assert s["Effect"] == "Allow"
        assert not any(a in ("s3:*", "*", "s3:DeleteObject") for a in s["Action"])
        for arn in arns(s["Resource"]):
            assert arn == "arn:aws:s3:::spike-detect" or arn.startswith(
                f"arn:aws:s3:::spike-detect/{group}/"
            )
    assert not any("results" in a for a in arns(write["Resource"]))


def test_instance_role_reads_inputs_writes_results_in_this_bucket_only() -> None:
    doc = t.render_template(blueprint())
    role = doc["Resources"][n.INSTANCE_ROLE]["Properties"]
    principal = role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
    assert principal == {"Service": "ec2.amazonaws.com"}
    policy = role["Policies"][0]["PolicyDocument"]
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert actions == {
        "s3:GetObject",
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:DeleteObject",
        "s3:ListBucket",
    }
    # A folder dataset is listed, only with a prefix inside a group's inputs/ (issue 24).
    listing = statement(policy, "ListFolderDatasetsInInputsOnly")
    assert arns(listing["Resource"]) == ["arn:aws:s3:::spike-detect"]
    inputs = ["labA/inputs/*", "lab_B-2/inputs/*", "empty/inputs/*"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": inputs}}
    deletes = arns(statement(policy, "CloseEndedJobs")["Resource"])
    assert deletes == ["arn:aws:s3:::spike-detect/.ncaas/open/*"]
    write = arns(statement(policy, "WriteResults")["Resource"])
    assert all(
        re.fullmatch(r"arn:aws:s3:::spike-detect/([^/]+/results|\.ncaas/ledger)/\*", a)
        for a in write
    ), write
    read = arns(statement(policy, "ReadInputsAndConfigs")["Resource"])
    assert "arn:aws:s3:::spike-detect/labA/inputs/*" in read
    assert not any("submissions" in a for a in read + write)


def test_dispatcher_role_passes_only_the_instance_role() -> None:
    doc = t.render_template(blueprint(), t.TemplateOptions(dispatcher=CODE))
    role = doc["Resources"][n.DISPATCHER_ROLE]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "lambda.amazonaws.com"
    }
    policy = role["Policies"][0]["PolicyDocument"]
    passing = statement(policy, "PassTheInstanceRoleOnly")
    assert passing["Resource"] == {"Fn::GetAtt": [n.INSTANCE_ROLE, "Arn"]}
    tagging = statement(policy, "TagInstancesAtLaunch")
    assert tagging["Condition"] == {"StringEquals": {"ec2:CreateAction": "RunInstances"}}
    writes = arns(statement(policy, "WriteJobFoldersAndRecords")["Resource"])
    assert sorted(writes) == sorted(
        [f"arn:aws:s3:::spike-detect/{g}/results/*" for g in ("labA", "lab_B-2", "empty")]
        + ["arn:aws:s3:::spike-detect/.ncaas/*"]
    )
    assert not any(a.endswith("/inputs/*") for a in writes)
    deletes = arns(statement(policy, "CloseEndedJobs")["Resource"])
    assert deletes == ["arn:aws:s3:::spike-detect/.ncaas/open/*"]


def test_long_names_stay_within_iam_limits_and_ids_are_alphanumeric() -> None:
    analysis = "a" * 60 + "-xy"
    doc = t.render_template(
        blueprint(analysis, groups=[{"name": "g" * 60, "users": ["u" * 60, "v" * 60]}]),
        t.TemplateOptions(dispatcher=t.CodeLocation(analysis, "k.zip")),
    )
    for logical, resource in doc["Resources"].items():
        assert re.fullmatch(r"[A-Za-z0-9]{1,255}", logical)
        props = resource["Properties"]
        for key, limit in (("RoleName", 64), ("UserName", 64), ("FunctionName", 64)):
            if key in props:
                assert len(props[key]) <= limit, (key, props[key])
        for key in ("GroupName", "InstanceProfileName"):
            if key in props:
                assert len(props[key]) <= 128
    users = [v["Properties"]["UserName"] for v in of_type(doc, "AWS::IAM::User").values()]
    assert len(set(users)) == 2  # cut names stay apart


def test_logical_ids_of_similar_names_differ() -> None:
    assert n.logical_id("Group", "lab-a") != n.logical_id("Group", "lab_a")


@pytest.mark.parametrize("with_lambda", [True, False])
def test_template_is_cfn_lint_clean(tmp_path: Path, with_lambda: bool) -> None:
    lint = shutil.which("cfn-lint", path=str(Path(sys.executable).parent))
    assert lint, "cfn-lint is a dev dependency: pip install -e .[dev]"
    options = t.TemplateOptions(dispatcher=CODE if with_lambda else None)
    path = tmp_path / "stack.json"
    path.write_text(json.dumps(t.render_template(blueprint(), options), indent=1))
    done = subprocess.run([lint, str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def _resolved(value: Any) -> Any:
    """The policy as AWS would read it in account 123456789012 (partition aws)."""
    if isinstance(value, list):
        return [_resolved(v) for v in value]
    if isinstance(value, dict):
        if "Fn::Sub" in value:
            return str(value["Fn::Sub"]).replace("${AWS::Partition}", "aws")
        if "Fn::GetAtt" in value:
            return "arn:aws:iam::123456789012:role/runner"
        return {k: _resolved(v) for k, v in value.items()}
    return value


def test_the_dispatcher_runs_only_its_ami_and_type_tagged_with_its_bucket() -> None:
    """Issue 13, defect 12: RunInstances is scoped to the blueprint's AMI, instance type and
    bucket tag (evaluated by moto's IAM policy engine)."""
    from moto.iam.access_control import IAMPolicy, PermissionResult

    from ncaas_dev.cloud.deploy.policies import dispatcher_policy

    ami = "ami-0123456789abcdef0"
    cloud = {"ami": ami, "instance_type": "c5.xlarge", "bucket": "spike-lab"}
    policy = IAMPolicy(json.dumps(_resolved(dispatcher_policy(blueprint(cloud=cloud)))))

    def may(resource: str, **context: str) -> bool:
        result = policy.is_action_permitted("ec2:RunInstances", resource, None, context)
        return bool(result == PermissionResult.PERMITTED)

    ec2 = "arn:aws:ec2:us-east-1:123456789012"
    assert may(f"arn:aws:ec2:us-east-1::image/{ami}")
    assert not may("arn:aws:ec2:us-east-1::image/ami-0fffffffffffffff0")
    ours = {"ec2:InstanceType": "c5.xlarge", "aws:RequestTag/ncaas:bucket": "spike-lab"}
    assert may(f"{ec2}:instance/*", **ours)
    assert not may(f"{ec2}:instance/*", **{**ours, "ec2:InstanceType": "p5.48xlarge"})
    assert not may(f"{ec2}:instance/*", **{**ours, "aws:RequestTag/ncaas:bucket": "other"})
    assert may(f"{ec2}:volume/*") and may(f"{ec2}:subnet/subnet-0abc12345")
