"""The bucket's settings outside the template, for a bucket the stack does not own (or whose
settings LocalStack's CloudFormation drops): blocked public access, encryption, the lifecycle
rule, and the submission notifications to the Lambda."""

from __future__ import annotations

from typing import Any

from ...blueprint import LoadedBlueprint
from ...bucketconfig import (
    block_public_access,
    default_encryption,
    encrypt_by_default,
    lifecycle_rules,
    notifications,
    put_lifecycle_rules,
    put_notifications,
)
from ...errors import NcaasError
from ...layout import CANCEL_SUFFIX, SUBMISSION_SUFFIX
from ...storage import AccessDenied, Storage
from .template import ABORT_INCOMPLETE_UPLOADS, PUBLIC_ACCESS_BLOCK, submission_filter

RULE_PREFIX = "ncaas-"  # the Ids of the notification rules deploy sets (one per group)


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


def secure_bucket(storage: Storage, bucket: str) -> None:
    """What the template sets on a bucket it owns, for a bucket it found already there: merged
    with what its owner set (their lifecycle rules and a default encryption stay)."""
    block_public_access(storage, bucket, PUBLIC_ACCESS_BLOCK)
    if not default_encryption(storage, bucket):
        encrypt_by_default(storage, bucket)
    ours = ABORT_INCOMPLETE_UPLOADS["Id"]
    rules = [r for r in lifecycle_rules(storage, bucket) or [] if r.get("ID") != ours]
    rules.append(
        {  # the template's rule, in S3's spelling ("ID", and a filter)
            "ID": ours,
            "Status": ABORT_INCOMPLETE_UPLOADS["Status"],
            "Filter": {"Prefix": ""},
            "AbortIncompleteMultipartUpload": ABORT_INCOMPLETE_UPLOADS[
                "AbortIncompleteMultipartUpload"
            ],
        }
    )
    put_lifecycle_rules(storage, bucket, rules)


def notify_lambda(storage: Storage, loaded: LoadedBlueprint, function_arn: str) -> None:
    """Submission and cancel-request notifications to the Lambda, for a bucket the stack does
    not own: merged with the owner's own notifications (only rules named ``ncaas-*`` are
    replaced)."""
    rules: list[dict[str, Any]] = [
        {
            "Id": f"{RULE_PREFIX}{g.name}{tail}",
            "LambdaFunctionArn": function_arn,
            "Events": ["s3:ObjectCreated:*"],
            "Filter": {"Key": {"FilterRules": submission_filter(g.name, suffix)}},
        }
        for g in loaded.blueprint.groups
        for tail, suffix in (("", SUBMISSION_SUFFIX), ("-cancel", CANCEL_SUFFIX))
    ]
    bucket = loaded.blueprint.bucket
    config = notifications(storage, bucket)
    owners = [
        r
        for r in config.get("LambdaFunctionConfigurations", [])
        if not str(r.get("Id", "")).startswith(RULE_PREFIX)
    ]
    config["LambdaFunctionConfigurations"] = owners + rules
    put_notifications(storage, bucket, config)
