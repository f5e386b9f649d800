"""Provision an analysis on a stack: bucket, group prefixes, submission notification, record."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from .analysis import AnalysisRecord, save_record
from .layout import GROUP_FOLDERS, SUBMISSION_SUFFIX, group_prefix
from .settings import Settings
from .storage import Storage, translated

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

QUEUE_NAME = "ncaas-submissions"  # one queue per stack: every analysis's submission events


def ensure_queue(sqs: SQSClient, endpoint: str | None) -> tuple[str, str]:
    """The queue's URL and ARN (created if missing)."""
    with translated(f"create queue {QUEUE_NAME}", endpoint):
        url = sqs.create_queue(
            QueueName=QUEUE_NAME,
            Attributes={"VisibilityTimeout": "120", "ReceiveMessageWaitTimeSeconds": "1"},
        )["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": queue_policy(arn)})
    return url, arn


def queue_policy(queue_arn: str) -> str:
    """Let S3 send notifications to the queue (AWS needs it; LocalStack accepts it)."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "s3.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                }
            ],
        }
    )


def provision(
    storage: Storage,
    sqs: SQSClient,
    settings: Settings,
    record: AnalysisRecord,
    bucket: str | None = None,
) -> None:
    """The bucket (the analysis name unless ``bucket``: deploy's ``cloud.bucket``), its
    folders, the queue, the notifications and the analysis record."""
    blueprint = record.blueprint
    bucket = bucket or blueprint.analysis
    storage.ensure_bucket(bucket, settings.region)
    for group in blueprint.groups:
        for folder in GROUP_FOLDERS:
            prefix = group_prefix(group.name, folder)
            if storage.head(bucket, prefix) is None:
                storage.put_bytes(bucket, prefix, b"")  # the "folder" users see in consoles
    _, queue_arn = ensure_queue(sqs, settings.endpoint_url)
    # One rule on the suffix: submissions of unknown groups reach the dispatcher too, and are
    # answered with a rejection instead of silence; keys outside submissions/ are ignored there.
    with translated(f"set notifications on {bucket}", settings.endpoint_url):
        storage.s3.put_bucket_notification_configuration(
            Bucket=bucket,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {
                        "Id": "ncaas-submissions",
                        "QueueArn": queue_arn,
                        "Events": ["s3:ObjectCreated:*"],
                        "Filter": {
                            "Key": {
                                "FilterRules": [
                                    {"Name": "suffix", "Value": SUBMISSION_SUFFIX},
                                ]
                            }
                        },
                    }
                ]
            },
        )
    save_record(storage, record, bucket)
