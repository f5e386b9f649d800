"""Provision an analysis on a stack: bucket, group prefixes, submission notification, record."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .analysis import AnalysisRecord, save_record
from .layout import GROUP_FOLDERS, SUBMISSION_SUFFIX, group_prefix
from .queue import ensure_queue
from .settings import Settings
from .storage import Storage, translated

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


def provision(storage: Storage, sqs: SQSClient, settings: Settings, record: AnalysisRecord) -> None:
    blueprint = record.blueprint
    bucket = blueprint.analysis
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
    save_record(storage, record)


def provisioned_analyses(storage: Storage) -> list[str]:
    """Buckets on the stack that hold an analysis record."""
    from .analysis import load_record

    with translated("list buckets", storage.endpoint):
        buckets = [b["Name"] for b in storage.s3.list_buckets().get("Buckets", [])]
    return [b for b in buckets if load_record(storage, b) is not None]
