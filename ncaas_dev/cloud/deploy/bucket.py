"""The bucket's settings outside the template, for a bucket the stack does not own (or whose
settings LocalStack's CloudFormation drops): blocked public access, encryption, the lifecycle
rule, and the submission notifications to the Lambda."""

from __future__ import annotations

from ...blueprint import LoadedBlueprint
from ...errors import NcaasError
from ...storage import AccessDenied, Storage, translated
from .template import ABORT_INCOMPLETE_UPLOADS, PUBLIC_ACCESS_BLOCK, submission_filter


def bucket_is_ours(storage: Storage, bucket: str) -> bool:
    """Whether ``bucket`` exists (False: it does not). HeadBucket answers 403 for a bucket of
    another account: names are global, so an analysis's name is often taken."""
    try:
        return storage.bucket_exists(bucket)
    except AccessDenied as e:
        raise NcaasError(
            f"bucket {bucket}: HeadBucket answered 403: that bucket name belongs to another "
            "account; set cloud.bucket",
            hint="set cloud.bucket in blueprint.yaml to a name of your own, e.g. "
            f"{bucket}-<your lab>",
        ) from e


def secure_bucket(storage: Storage, bucket: str, endpoint: str | None) -> None:
    """What the template sets on a bucket it owns, for a bucket it found already there."""
    with translated(f"secure bucket {bucket}", endpoint):
        storage.s3.put_public_access_block(
            Bucket=bucket,
            PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK,  # type: ignore[arg-type]
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
                    {  # the template's rule, in S3's spelling ("ID", and a filter)
                        "ID": ABORT_INCOMPLETE_UPLOADS["Id"],
                        "Status": ABORT_INCOMPLETE_UPLOADS["Status"],
                        "Filter": {"Prefix": ""},
                        "AbortIncompleteMultipartUpload": ABORT_INCOMPLETE_UPLOADS[
                            "AbortIncompleteMultipartUpload"
                        ],
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
            "Filter": {"Key": {"FilterRules": submission_filter(g.name)}},
        }
        for g in loaded.blueprint.groups
    ]
    bucket = loaded.blueprint.bucket
    with translated(f"set notifications on {bucket}", storage.endpoint):
        storage.s3.put_bucket_notification_configuration(
            Bucket=bucket,
            NotificationConfiguration={"LambdaFunctionConfigurations": rules},  # type: ignore[typeddict-item]
        )
