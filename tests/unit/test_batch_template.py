"""The Batch part of the deploy template: cfn-lint accepts it, the job definition is
content-addressed, and moto's IAM evaluator proves the roles as narrow as the EC2 path's."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_template import _resolved, blueprint

from ncaas_dev.cloud.deploy import batch as b
from ncaas_dev.cloud.deploy import names as n
from ncaas_dev.cloud.deploy import template as t
from ncaas_dev.cloud.deploy.policies import instance_policy

OPTIONS = b.BatchOptions(image_id="sha256:" + "a" * 64, content_hash="c" * 64)


def render(**extra: Any) -> dict[str, Any]:
    return t.render_template(blueprint(**extra), t.TemplateOptions(batch=OPTIONS))


@pytest.mark.parametrize("spot", [True, False])
def test_batch_template_is_cfn_lint_clean(tmp_path: Path, spot: bool) -> None:
    lint = shutil.which("cfn-lint", path=str(Path(sys.executable).parent))
    assert lint, "cfn-lint is a dev dependency: pip install -e .[dev]"
    extra = {"batch": {"spot": spot}, "cloud": {"ami": "ami-0123456789abcdef0"}}
    path = tmp_path / "stack.json"
    path.write_text(json.dumps(render(**extra), indent=1))
    done = subprocess.run([lint, str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_compute_environment_follows_the_batch_section() -> None:
    spot = render(cloud={"ami": "ami-0123456789abcdef0", "subnet_id": "subnet-0abc12345"})
    env = spot["Resources"][b.COMPUTE_ENVIRONMENT]["Properties"]["ComputeResources"]
    assert (env["Type"], env["AllocationStrategy"]) == ("SPOT", "SPOT_PRICE_CAPACITY_OPTIMIZED")
    assert (env["MinvCpus"], env["MaxvCpus"], env["InstanceTypes"]) == (0, 256, ["m5.xlarge"])
    assert env["Ec2Configuration"][0]["ImageIdOverride"] == "ami-0123456789abcdef0"
    assert env["Subnets"] == ["subnet-0abc12345"] and "Parameters" not in spot
    demand = render(batch={"spot": False, "max_vcpus": 16, "instance_types": ["c5.large"]})
    env = demand["Resources"][b.COMPUTE_ENVIRONMENT]["Properties"]["ComputeResources"]
    assert (env["Type"], env["MaxvCpus"], env["InstanceTypes"]) == ("EC2", 16, ["c5.large"])
    assert (
        env["Subnets"] == {"Ref": b.SUBNETS_PARAMETER}
        and b.SUBNETS_PARAMETER in (demand["Parameters"])
    )
    # Batch's service-linked role runs the environment: no service role of ours.
    assert "ServiceRole" not in demand["Resources"][b.COMPUTE_ENVIRONMENT]["Properties"]


def test_an_existing_queue_is_used_not_made() -> None:
    doc = render(batch={"job_queue": "lab-queue"})
    assert b.JOB_QUEUE not in doc["Resources"]
    policy = doc["Resources"][b.DISPATCHER_BATCH_POLICY]["Properties"]["PolicyDocument"]
    assert "job-queue/lab-queue" in json.dumps(policy)


def test_job_definition_is_content_addressed_with_the_retry_rule() -> None:
    doc = render(run={"timeout": 1200}, resources={"cpus": 2, "memory": "3g"})
    props = doc["Resources"][b.JOB_DEFINITION]["Properties"]
    assert props["JobDefinitionName"] == b.definition_name(blueprint(), OPTIONS)
    assert (
        render()["Resources"][b.JOB_DEFINITION]["Properties"]["JobDefinitionName"]
        == (props["JobDefinitionName"])
    )  # unchanged analysis: the same definition
    other = b.BatchOptions(image_id="sha256:" + "b" * 64, content_hash=OPTIONS.content_hash)
    assert b.definition_name(blueprint(), other) != props["JobDefinitionName"]
    assert props["Timeout"] == {"AttemptDurationSeconds": 1200 + b.STAGING_MARGIN_S}
    assert props["ContainerProperties"]["ResourceRequirements"] == [
        {"Type": "VCPU", "Value": "2"},
        {"Type": "MEMORY", "Value": "3072"},
    ]
    assert props["RetryStrategy"] == {
        "Attempts": 3,
        "EvaluateOnExit": [
            {"OnStatusReason": "Host EC2*", "Action": "RETRY"},
            {"OnReason": "*", "Action": "EXIT"},
        ],
    }


def test_roles_are_as_narrow_as_the_ec2_path() -> None:
    doc = render()
    job = doc["Resources"][b.JOB_ROLE]["Properties"]
    assert job["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "ecs-tasks.amazonaws.com"
    }
    assert job["Policies"][0]["PolicyDocument"] == instance_policy(blueprint())
    host = doc["Resources"][b.HOST_ROLE]["Properties"]
    assert "Policies" not in host and len(host["ManagedPolicyArns"]) == 1
    attached = doc["Resources"][b.DISPATCHER_BATCH_POLICY]["Properties"]["Roles"]
    assert attached == [{"Ref": n.DISPATCHER_ROLE}]


def test_the_dispatcher_submits_only_to_its_queue_and_ends_only_its_jobs() -> None:
    from moto.iam.access_control import IAMPolicy, PermissionResult

    text = json.dumps(_resolved(b.dispatcher_batch_policy(blueprint())))
    text = text.replace("${AWS::Region}", "us-east-1").replace("${AWS::AccountId}", "123456789012")
    policy = IAMPolicy(text)
    arn = "arn:aws:batch:us-east-1:123456789012"

    def may(action: str, resource: str, **context: str) -> bool:
        result = policy.is_action_permitted(action, resource, None, context)
        return bool(result == PermissionResult.PERMITTED)

    assert may("batch:SubmitJob", f"{arn}:job-queue/ncaas-spike-detect")
    assert not may("batch:SubmitJob", f"{arn}:job-queue/someone-elses")
    assert may("batch:SubmitJob", f"{arn}:job-definition/ncaas-spike-detect-0123:1")
    assert not may("batch:SubmitJob", f"{arn}:job-definition/other:1")
    ours = {"aws:ResourceTag/ncaas:analysis": "spike-detect"}
    assert may("batch:TerminateJob", f"{arn}:job/j-1", **ours)
    assert not may(
        "batch:TerminateJob", f"{arn}:job/j-1", **{"aws:ResourceTag/ncaas:analysis": "x"}
    )
    assert may("batch:DescribeJobs", "*") and not may("batch:CreateComputeEnvironment", "*")


def test_deploy_adds_batch_only_for_a_batch_section_with_a_subnet(tmp_path: Path) -> None:
    from ncaas_dev.blueprint import load_blueprint
    from ncaas_dev.cloud.deploy.deploy import batch_options
    from ncaas_dev.errors import UsageError
    from ncaas_dev.storage import NotFound

    class NoRecord:  # _record_for reads the analysis's record: none deployed yet
        def get_json(self, *_: Any) -> None:
            raise NotFound("no record")

    def loaded(text: str) -> Any:
        folder = tmp_path / str(abs(hash(text)))
        folder.mkdir()
        (folder / "blueprint.yaml").write_text(
            "analysis: spike-detect\ngroups: [{name: labA}]\n" + text
        )
        (folder / "Dockerfile").write_text("FROM ncaas/base:bookworm\n")
        return load_blueprint(folder)

    assert batch_options(loaded(""), NoRecord()) is None  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"cloud\.subnet_id"):
        batch_options(loaded("batch: {spot: true}\n"), NoRecord())  # type: ignore[arg-type]
    chosen = loaded("batch: {spot: true}\ncloud: {subnet_id: subnet-0abc12345}\n")
    options = batch_options(chosen, NoRecord())  # type: ignore[arg-type]
    assert options.content_hash == chosen.content_hash
