"""`deploy` on a bucket made outside the stack merges its settings with the owner's (issue 13,
"Also"): the owner's lifecycle rules, encryption and notifications stay, in moto's S3."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from moto_world import aws, client  # noqa: F401 (aws: a fixture)

from ncaas_dev.blueprint import load_blueprint
from ncaas_dev.cloud.deploy.bucket import notify_lambda, secure_bucket
from ncaas_dev.storage import Storage

ROOT = Path(__file__).resolve().parents[2]
SPIKE = ROOT / "blueprints" / "spike-detect"
FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:ncaas-spike-detect"
KMS = {
    "Rules": [
        {
            "ApplyServerSideEncryptionByDefault": {
                "SSEAlgorithm": "aws:kms",
                "KMSMasterKeyID": "arn:aws:kms:us-east-1:123456789012:key/abc",
            }
        }
    ]
}


@pytest.mark.usefixtures("aws")
def test_the_owners_lifecycle_encryption_and_notifications_stay() -> None:
    s3, sqs = client("s3"), client("sqs")
    loaded = load_blueprint(SPIKE)
    bucket = loaded.blueprint.bucket
    s3.create_bucket(Bucket=bucket)
    owner_rule = {
        "ID": "owner-expire-tmp",
        "Status": "Enabled",
        "Filter": {"Prefix": "tmp/"},
        "Expiration": {"Days": 7},
    }
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": [owner_rule]}
    )
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=KMS)
    queue = sqs.get_queue_attributes(
        QueueUrl=sqs.create_queue(QueueName="owner")["QueueUrl"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    owner_notice = {
        "Id": "owner-archive",
        "QueueArn": queue,
        "Events": ["s3:ObjectCreated:*"],
        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "archive/"}]}},
    }
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [owner_notice]}
    )
    storage = Storage(s3, None)

    for _ in range(2):  # a second deploy changes nothing
        secure_bucket(storage, bucket)
        notify_lambda(storage, loaded, FUNCTION)

    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert sorted(r["ID"] for r in rules) == ["abort-incomplete-uploads", "owner-expire-tmp"]
    encryption = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    assert encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == (
        "aws:kms"
    )
    config: dict[str, Any] = s3.get_bucket_notification_configuration(Bucket=bucket)
    assert [q["Id"] for q in config["QueueConfigurations"]] == ["owner-archive"]
    ours = sorted(r["Id"] for r in config["LambdaFunctionConfigurations"])
    assert ours == sorted(
        f"ncaas-{g.name}{tail}" for g in loaded.blueprint.groups for tail in ("", "-cancel")
    )
