"""The bucket's settings outside the template, for a bucket the stack does not own (or whose
settings LocalStack's CloudFormation drops): blocked public access, encryption, the lifecycle
rule, and the submission notifications to the Lambda."""

from __future__ import annotations

from ...blueprint import LoadedBlueprint
from ...layout import SUBMISSION_SUFFIX, group_prefix
from ...storage import Storage, translated


def secure_bucket(storage: Storage, bucket: str, endpoint: str | None) -> None:
    """What the template sets on a bucket it owns, for a bucket it found already there."""
    with translated(f"secure bucket {bucket}", endpoint):
        storage.s3.put_public_access_block(
            Bucket=bucket,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        storage.s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
        storage.s3.put_bucket_lifecycle_configuration(
            Bucket=bucket,
            LifecycleConfiguration={
                "Rules": [
                    {
                        "ID": "abort-incomplete-uploads",
                        "Status": "Enabled",
                        "Filter": {"Prefix": ""},
                        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                    }
                ]
            },
        )


def notify_lambda(storage: Storage, loaded: LoadedBlueprint, function_arn: str) -> None:
    """Submission notifications to the Lambda, for a bucket the stack does not own."""
    rules = [
        {
            "Id": f"ncaas-{g.name}",
            "LambdaFunctionArn": function_arn,
            "Events": ["s3:ObjectCreated:*"],
            "Filter": {
                "Key": {
                    "FilterRules": [
                        {"Name": "prefix", "Value": group_prefix(g.name, "submissions")},
                        {"Name": "suffix", "Value": SUBMISSION_SUFFIX},
                    ]
                }
            },
        }
        for g in loaded.blueprint.groups
    ]
    bucket = loaded.blueprint.analysis
    with translated(f"set notifications on {bucket}", storage.endpoint):
        storage.s3.put_bucket_notification_configuration(
            Bucket=bucket,
            NotificationConfiguration={"LambdaFunctionConfigurations": rules},  # type: ignore[typeddict-item]
        )
