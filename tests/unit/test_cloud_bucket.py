"""``cloud.bucket`` (issue 13, defect 1): bucket names are global, so the cloud path names the
bucket the blueprint chose, everywhere; a name held by another account says so. Offline: the
template is pure, S3 and EC2 are stubbed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from ncaas_dev.analysis import AnalysisRecord
from ncaas_dev.blueprint import parse_blueprint
from ncaas_dev.cloud.deploy import template as t
from ncaas_dev.cloud.deploy.bucket import bucket_is_ours
from ncaas_dev.cloud.deploy.lambda_handler import build_dispatcher
from ncaas_dev.cloud.deploy.names import DISPATCHER_FUNCTION, S3_INVOKE_PERMISSION
from ncaas_dev.cloud.layout import TAG_ANALYSIS, TAG_BUCKET
from ncaas_dev.errors import BlueprintError, NcaasError
from ncaas_dev.launchers.base import DatasetTask
from ncaas_dev.launchers.ec2 import Ec2Launcher, _tags
from ncaas_dev.settings import Settings
from ncaas_dev.storage import Storage

ANALYSIS = "spike-detect"
OURS = "spike-detect-smithlab"


def _blueprint(**cloud: Any) -> Any:
    doc = {"analysis": ANALYSIS, "groups": [{"name": "labA", "users": ["alice"]}]}
    return parse_blueprint({**doc, "cloud": cloud}, "test")


def _s3_arns(doc: Any) -> list[str]:
    text = json.dumps(doc)
    return [part.split('"')[0] for part in text.split("arn:${AWS::Partition}:s3:::")[1:]]


def test_the_bucket_defaults_to_the_analysis_name() -> None:
    assert _blueprint().bucket == ANALYSIS
    assert _blueprint(bucket=OURS).bucket == OURS


def test_cloud_bucket_must_be_a_bucket_name() -> None:
    with pytest.raises(BlueprintError, match=r"cloud\.bucket"):
        _blueprint(bucket="Not_A_Bucket")


def test_the_template_names_cloud_bucket_everywhere() -> None:
    blueprint = _blueprint(bucket=OURS)
    code = t.CodeLocation(OURS, ".ncaas/artifacts/x.zip")
    doc = t.render_template(blueprint, t.TemplateOptions(dispatcher=code))
    resources = doc["Resources"]
    buckets = [r for r in resources.values() if r["Type"] == "AWS::S3::Bucket"]
    assert [b["Properties"]["BucketName"] for b in buckets] == [OURS]
    assert doc["Outputs"]["BucketName"]["Value"] == OURS
    env = resources[DISPATCHER_FUNCTION]["Properties"]["Environment"]["Variables"]
    assert env == {"NCAAS_ANALYSIS": ANALYSIS, "NCAAS_BUCKET": OURS}
    source = resources[S3_INVOKE_PERMISSION]["Properties"]["SourceArn"]["Fn::Sub"]
    assert source.endswith(f":::{OURS}")
    s3_arns = _s3_arns(doc)
    assert s3_arns and all(a == OURS or a.startswith(f"{OURS}/") for a in s3_arns), s3_arns


def _stubbed_storage() -> tuple[Storage, Stubber]:
    s3 = boto3.client(
        "s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    return Storage(s3, None), Stubber(s3)


def test_a_bucket_of_another_account_is_named_as_such() -> None:
    storage, stub = _stubbed_storage()
    stub.add_client_error("head_bucket", "403", "Forbidden", 403, expected_params={"Bucket": OURS})
    with stub, pytest.raises(NcaasError) as caught:
        bucket_is_ours(storage, OURS)
    assert "that bucket name belongs to another account; set cloud.bucket" in str(caught.value)


def test_a_missing_bucket_is_not_ours_yet() -> None:
    storage, stub = _stubbed_storage()
    stub.add_client_error("head_bucket", "404", "Not Found", 404)
    with stub:
        assert bucket_is_ours(storage, OURS) is False


def test_the_lambda_serves_cloud_bucket(tmp_path: Path) -> None:
    env = {"NCAAS_ANALYSIS": ANALYSIS, "NCAAS_BUCKET": OURS, "AWS_REGION": "us-east-1"}
    dispatcher = build_dispatcher(env)
    buckets = dispatcher.storage.s3.list_buckets()["Buckets"]  # answered locally, no S3 call
    assert [b["Name"] for b in buckets] == [OURS]


def test_instances_carry_and_are_counted_by_their_bucket(tmp_path: Path) -> None:
    blueprint = _blueprint(bucket=OURS)
    record = AnalysisRecord(blueprint=blueprint, content_hash="0" * 64, image="i", image_id=None)
    task = DatasetTask(
        bucket=OURS, group="labA", job="job_1", dataset="d.bin", data_key="labA/inputs/d.bin",
        config_key=None, record=record, endpoint_url=None, region="us-east-1",
    )  # fmt: skip
    tags = {t["Key"]: t["Value"] for t in _tags(task)}
    assert tags[TAG_BUCKET] == OURS and tags[TAG_ANALYSIS] == ANALYSIS
    ec2 = boto3.client(
        "ec2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    settings = Settings(endpoint_url=None, region="us-east-1", state_dir=tmp_path)
    launcher = Ec2Launcher(settings, storage=None, ec2=ec2, iam=object())  # type: ignore[arg-type]
    filters = [
        {"Name": f"tag:{TAG_BUCKET}", "Values": [OURS]},
        {"Name": "instance-state-name", "Values": ["pending", "running", "stopping"]},
    ]
    with Stubber(ec2) as stub:
        stub.add_response("describe_instances", {"Reservations": []}, {"Filters": filters})
        assert launcher.active(OURS) == 0
        stub.assert_no_pending_responses()
