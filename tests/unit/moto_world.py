"""AWS in moto's in-process mock for the EC2 launcher's unit tests: a provisioned bucket, an AMI,
an instance profile and a stack record, and a submission helper. Nothing leaves the process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from ncaas_dev.analysis import AnalysisRecord, save_record
from ncaas_dev.blueprint import parse_blueprint
from ncaas_dev.cloud.layout import StackRecord, save_stack_record
from ncaas_dev.events import ObjectCreated
from ncaas_dev.storage import Storage

BUCKET = "spike-reaper"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from moto import mock_aws

    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "NCAAS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield


def client(service: str) -> Any:
    return boto3.client(service, region_name="us-east-1")  # type: ignore[call-overload]


def provision(storage: Storage, ec2: Any, iam: Any, **blueprint: Any) -> None:
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    cloud = {"ami": ami, **blueprint.pop("cloud", {})}
    doc = {"analysis": BUCKET, "groups": [{"name": "labA", "users": []}], "cloud": cloud}
    doc.update(blueprint)
    parsed = parse_blueprint(doc, "test")
    storage.s3.create_bucket(Bucket=BUCKET)
    record = AnalysisRecord(blueprint=parsed, content_hash="0" * 64, image="x", image_id=None)
    save_record(storage, record)
    iam.create_role(RoleName="runner", AssumeRolePolicyDocument="{}")
    iam.create_instance_profile(InstanceProfileName="runner")
    iam.add_role_to_instance_profile(InstanceProfileName="runner", RoleName="runner")
    save_stack_record(storage, BUCKET, StackRecord(stack_name="s", instance_profile="runner"))


def analysis_bucket(storage: Storage, **blueprint: Any) -> None:
    """BUCKET with the record of an analysis for group labA (``blueprint``: more fields)."""
    storage.s3.create_bucket(Bucket=BUCKET)
    doc = {"analysis": BUCKET, "groups": [{"name": "labA", "users": []}], **blueprint}
    record = AnalysisRecord(
        blueprint=parse_blueprint(doc, "test"), content_hash="0" * 64, image="x"
    )
    save_record(storage, record)


def submit(storage: Storage, name: str = "s") -> ObjectCreated:
    """Upload an input and a submission naming it; the event S3 would send."""
    s3 = storage.s3
    s3.put_object(Bucket=BUCKET, Key="labA/inputs/d.bin", Body=b"x" * 100)
    key = f"labA/submissions/{name}_submit.json"
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps({"dataname": "labA/inputs/d.bin"}))
    etag = s3.head_object(Bucket=BUCKET, Key=key)["ETag"].strip('"')
    return ObjectCreated(BUCKET, key, etag, 1)
