"""Provision an analysis on a stack: bucket, group prefixes, submission notification, record."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..analysis import AnalysisRecord, save_record
from ..bucketconfig import (
    cors_rules,
    lifecycle_rules,
    put_cors_rules,
    put_lifecycle_rules,
    put_notifications,
)
from ..layout import CANCEL_SUFFIX, GROUP_FOLDERS, SUBMISSION_SUFFIX, group_prefix
from ..settings import Settings
from ..storage import Storage, translated

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

QUEUE_NAME = "ncaas-submissions"  # one queue per stack: every analysis's submission events


# The objects that reach the dispatcher: submissions and cancel requests (S3 refuses two
# rules whose filters overlap; these two suffixes do not).
NOTIFIED_SUFFIXES = (("ncaas-submissions", SUBMISSION_SUFFIX), ("ncaas-cancels", CANCEL_SUFFIX))


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
    # Rules on the suffix only: submissions of unknown groups reach the dispatcher too, and are
    # answered with a rejection instead of silence; keys outside submissions/ are ignored there.
    rules = [
        {
            "Id": rule_id,
            "QueueArn": queue_arn,
            "Events": ["s3:ObjectCreated:*"],
            "Filter": {"Key": {"FilterRules": [{"Name": "suffix", "Value": suffix}]}},
        }
        for rule_id, suffix in NOTIFIED_SUFFIXES
    ]
    put_notifications(storage, bucket, {"QueueConfigurations": rules})
    allow_browser_uploads(storage, bucket)  # the web client's uploads (below)
    save_record(storage, record, bucket)


# The web client (`ncaas-dev web`) uploads from the browser straight to S3 with presigned
# multipart requests: the bucket must let that page's origin PUT parts and read their ETags,
# and parts of uploads a browser abandoned must not be kept (and billed) forever.
WEB_ORIGINS = ("http://127.0.0.1:8765", "http://localhost:8765")
CORS_RULE_ID = "ncaas-web"
ABORT_RULE_ID = "abort-incomplete-uploads"  # the id deploy's template gives the same rule


def allow_browser_uploads(storage: Storage, bucket: str, origins: Iterable[str] = ()) -> None:
    """CORS for the web client's origins (ETag exposed) and a lifecycle rule that aborts
    multipart uploads left incomplete for 7 days; other rules on the bucket are kept."""
    rules = cors_rules(storage, bucket)
    ours = next((r for r in rules if r.get("ID") == CORS_RULE_ID), None)
    known = set(ours.get("AllowedOrigins", [])) if ours else set()
    wanted = sorted(known | set(WEB_ORIGINS) | set(origins))
    if ours is None or sorted(known) != wanted:
        rules = [r for r in rules if r.get("ID") != CORS_RULE_ID]
        rules.append(
            {
                "ID": CORS_RULE_ID,
                "AllowedOrigins": wanted,
                "AllowedMethods": ["GET", "PUT", "HEAD"],
                "AllowedHeaders": ["*"],
                "ExposeHeaders": ["ETag"],
                "MaxAgeSeconds": 3000,
            }
        )
        put_cors_rules(storage, bucket, rules)
    kept = lifecycle_rules(storage, bucket) or []
    if any(r.get("ID") == ABORT_RULE_ID for r in kept):
        return
    rule: dict[str, Any] = {
        "ID": ABORT_RULE_ID,
        "Status": "Enabled",
        "Filter": {"Prefix": ""},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
    }
    put_lifecycle_rules(storage, bucket, [*kept, rule])
