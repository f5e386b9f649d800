"""The bake's view of EC2 (LocalStack's or AWS's): an AMI looked up by id, the AMI a local
build starts from, and EC2's errors said in one line with what to check."""

from __future__ import annotations

import contextlib
import os
from dataclasses import replace
from typing import Any

import botocore.exceptions

from ...aws import client as aws_client
from ...errors import NcaasError
from ...settings import Settings
from ..aws_errors import NO_CREDENTIALS_HINT, aws_error
from ..layout import TAG_ANALYSIS, TAG_BAKE_KEY
from . import packer

_NOT_FOUND = {"InvalidAMIID.NotFound", "InvalidAMIID.Malformed", "InvalidAMIID.Unavailable"}


def ec2_client(settings: Settings, region: str) -> Any:
    """EC2 in ``region``: the blueprint's, where the AMI is registered."""
    return aws_client(replace(settings, region=region), "ec2")


def _aws_error(e: Exception, settings: Settings) -> NcaasError:
    where = settings.endpoint_url or "AWS"
    if isinstance(e, botocore.exceptions.NoCredentialsError):
        return NcaasError(
            "no AWS credentials found", hint="set AWS_PROFILE or run `aws configure` for --cloud"
        )
    if settings.local:
        return NcaasError(f"EC2 at {where} failed: {e}", hint="is it up? `ncaas-dev status`")
    return NcaasError(
        f"EC2 in AWS failed: {e}",
        hint="check the credentials and region (`aws sts get-caller-identity`)",
    )


def check_cloud_access(ec2: Any, settings: Settings, region: str) -> None:
    """Before a cloud bake builds or starts anything: credentials, the region, and permission
    to describe images (a dry run), failing in the same one line as `deploy --cloud`."""
    what = f"DescribeImages in {region}"
    try:
        ec2.describe_images(Owners=["self"], DryRun=True)
    except botocore.exceptions.ClientError as e:
        if e.response.get("Error", {}).get("Code") == "DryRunOperation":
            return  # allowed
        raise aws_error(what, e, settings.endpoint_url, NO_CREDENTIALS_HINT) from e
    except botocore.exceptions.EndpointConnectionError as e:
        raise NcaasError(
            f"{what} failed: no EC2 endpoint answers for region {region!r}",
            hint="check cloud.region in the blueprint (e.g. us-east-1)",
        ) from e
    except botocore.exceptions.BotoCoreError as e:
        raise aws_error(what, e, settings.endpoint_url, NO_CREDENTIALS_HINT) from e


def describe_ami(ec2: Any, ami: str, settings: Settings) -> dict[str, Any] | None:
    """The AMI, or None when this EC2 does not know it."""
    try:
        images = ec2.describe_images(ImageIds=[ami])["Images"]
    except botocore.exceptions.ClientError as e:
        if e.response.get("Error", {}).get("Code") in _NOT_FOUND:
            return None
        raise _aws_error(e, settings) from e
    except botocore.exceptions.BotoCoreError as e:
        raise _aws_error(e, settings) from e
    return dict(images[0]) if images else None


def local_source_ami(ec2: Any, wanted: packer.SourceAmi, settings: Settings) -> str:
    """An AMI id LocalStack knows: the wanted one if it is there, else one of its pre-registered
    EBS images (Canonical's Ubuntu first). Nothing boots from it locally, so any id works."""
    ebs = {"root-device-type": "ebs"}
    searches: list[tuple[list[str], dict[str, str]]] = [
        ([packer.CANONICAL], {"name": "ubuntu/images/*", **ebs}),
        ([], ebs),
    ]
    if wanted.filters:
        searches.insert(0, (list(wanted.owners), wanted.filters))
    try:
        if wanted.image_id and describe_ami(ec2, wanted.image_id, settings):
            return wanted.image_id
        for owners, filters in searches:
            kwargs: dict[str, Any] = {
                "Filters": [{"Name": k, "Values": [v]} for k, v in filters.items()]
            }
            if owners:
                kwargs["Owners"] = owners
            images = ec2.describe_images(**kwargs)["Images"]
            if images:  # Ubuntu's names end in their date: the greatest is the newest
                return str(max(images, key=lambda i: str(i.get("Name", "")))["ImageId"])
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
        raise _aws_error(e, settings) from e
    raise NcaasError(
        f"LocalStack's EC2 at {settings.endpoint_url} knows no EBS-backed AMI to start from",
        hint="set cloud.source_ami to an AMI id registered there",
    )


def source_snapshot_gb(ec2: Any, wanted: packer.SourceAmi, settings: Settings) -> int:
    """The root snapshot size of the AMI the cloud build starts from (the newest match, as
    Packer picks it), so the build's volume is never smaller (EC2 refuses that); 0 if unknown."""
    from ..ec2.images import snapshot_gb

    try:
        if wanted.image_id:
            image = describe_ami(ec2, wanted.image_id, settings)
            return snapshot_gb(image) if image else 0
        kwargs: dict[str, Any] = {
            "Filters": [{"Name": k, "Values": [v]} for k, v in wanted.filters.items()],
            "Owners": list(wanted.owners),
        }
        images = ec2.describe_images(**kwargs)["Images"]
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
        raise _aws_error(e, settings) from e
    if not images:
        return 0
    return snapshot_gb(max(images, key=lambda i: str(i.get("CreationDate", ""))))


# A re-bake keeps this many of the analysis's AMIs (the new one included), and deregisters the
# older ones with their snapshots, which are billed per GiB-month for as long as they exist.
KEEP_AMIS = int(os.environ.get("NCAAS_KEEP_AMIS", "2"))


def prune_amis(
    ec2: Any, analysis: str, current: str, settings: Settings, keep: int = KEEP_AMIS
) -> list[str]:
    """Deregister this analysis's baked AMIs (ours: owned by this account, tagged with the
    analysis and a bake key) beyond the newest ``keep``, never ``current``; delete their
    snapshots. Returns the AMIs deregistered."""
    filters = [
        {"Name": f"tag:{TAG_ANALYSIS}", "Values": [analysis]},
        {"Name": "tag-key", "Values": [TAG_BAKE_KEY]},
    ]
    try:
        images = ec2.describe_images(Owners=["self"], Filters=filters)["Images"]
        images.sort(key=lambda i: (i["ImageId"] == current, str(i.get("CreationDate", ""))))
        old = [i for i in images[: max(0, len(images) - max(keep, 1))] if i["ImageId"] != current]
        for image in old:
            ec2.deregister_image(ImageId=image["ImageId"])
            for mapping in image.get("BlockDeviceMappings", []):
                snapshot = mapping.get("Ebs", {}).get("SnapshotId")
                if snapshot:
                    with contextlib.suppress(botocore.exceptions.ClientError):
                        ec2.delete_snapshot(SnapshotId=snapshot)  # gone already, or shared
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
        raise _aws_error(e, settings) from e
    return [i["ImageId"] for i in old]
