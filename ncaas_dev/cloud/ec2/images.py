"""AMIs as bake, the EC2 launcher and doctor read them: the root snapshot's size and the
check that an AMI exists and was baked from the analysis's current image."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ...errors import NcaasError
from ..layout import TAG_IMAGE_ID, tags_of
from .api import ec2_errors

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

    from ...settings import Settings


def snapshot_gb(image: dict[str, Any]) -> int:
    """The size of an AMI's root snapshot (0 when the description does not say)."""
    root = image.get("RootDeviceName")
    for mapping in image.get("BlockDeviceMappings", []):
        if mapping.get("DeviceName") == root:
            return int(mapping.get("Ebs", {}).get("VolumeSize") or 0)
    return 0


def check_ami(
    ec2: EC2Client,
    ami: str,
    image_id: str | None,
    region: str,
    settings: Settings,
    blueprint_dir: str = "BLUEPRINT_DIR",
) -> dict[str, Any]:
    """The AMI exists and was baked from ``image_id``; returns its description. The fix names
    ``blueprint_dir`` when the caller knows it."""
    with ec2_errors(f"DescribeImages {ami}", settings.endpoint_url):
        try:
            images = ec2.describe_images(ImageIds=[ami])["Images"]
        except ClientError as e:
            if "NotFound" not in e.response.get("Error", {}).get("Code", ""):
                raise
            images = []
    where = f"LocalStack at {settings.endpoint_url}" if settings.local else region
    if not images:
        raise NcaasError(
            f"AMI {ami} (cloud.ami) does not exist in {where}",
            hint=f"bake it there with `ncaas-dev bake {blueprint_dir}`",
        )
    image = images[0]
    baked_from = tags_of(image).get(TAG_IMAGE_ID)
    if baked_from and image_id and baked_from != image_id:
        raise NcaasError(
            f"AMI {ami} was baked from image {baked_from[:19]} but the analysis now runs "
            f"{image_id[:19]}",
            hint=f"bake again with `ncaas-dev bake {blueprint_dir}`",
        )
    return dict(image)
