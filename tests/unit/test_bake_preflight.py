"""`bake --cloud` checks credentials, the region and permission to describe images before it
builds or starts anything (issue 13, "Also"), offline: no credentials at all, or EC2 stubbed."""

from __future__ import annotations

from pathlib import Path

import boto3
import botocore.exceptions
import pytest
from botocore.stub import Stubber

from ncaas_dev.blueprint import load_blueprint
from ncaas_dev.cloud.aws_errors import NO_CREDENTIALS_HINT
from ncaas_dev.cloud.bake import bake as bake_module
from ncaas_dev.cloud.bake.amis import check_cloud_access
from ncaas_dev.errors import NcaasError
from ncaas_dev.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SPIKE = ROOT / "blueprints" / "spike-detect"


class NoBuilds:
    def build(self, *args: object, **kwargs: object) -> str:
        raise AssertionError("built an image before checking AWS")


def settings(tmp_path: Path) -> Settings:
    return Settings(endpoint_url=None, region="us-east-1", state_dir=tmp_path)


def ec2() -> object:
    return boto3.client(
        "ec2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )


def test_without_credentials_bake_stops_in_deploys_one_line_before_building(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(bake_module.packer, "packer_binary", lambda: Path("/bin/true"))
    loaded = load_blueprint(SPIKE)
    with pytest.raises(NcaasError) as told:
        bake_module.bake(loaded, settings(tmp_path), NoBuilds(), cloud=True)  # type: ignore[arg-type]
    region = loaded.blueprint.cloud.region
    assert told.value.message == f"DescribeImages in {region} failed: no AWS credentials"
    assert told.value.hint == NO_CREDENTIALS_HINT


def test_permission_to_describe_images_is_checked_by_a_dry_run(tmp_path: Path) -> None:
    client = ec2()
    with Stubber(client) as stub:
        stub.add_client_error("describe_images", "DryRunOperation", "would have succeeded")
        check_cloud_access(client, settings(tmp_path), "us-east-1")
        stub.add_client_error("describe_images", "UnauthorizedOperation", "You are not authorized")
        with pytest.raises(NcaasError) as told:
            check_cloud_access(client, settings(tmp_path), "us-east-1")
        stub.assert_no_pending_responses()
    assert told.value.message == (
        "DescribeImages in us-east-1 failed: UnauthorizedOperation: You are not authorized"
    )


def test_a_region_without_an_endpoint_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    client = ec2()

    def unreachable(**_: object) -> None:
        raise botocore.exceptions.EndpointConnectionError(endpoint_url="https://ec2.mars-1")

    monkeypatch.setattr(client, "describe_images", unreachable)
    with pytest.raises(NcaasError) as told:
        check_cloud_access(client, settings(tmp_path), "mars-1")
    assert "no EC2 endpoint answers for region 'mars-1'" in told.value.message
    assert "cloud.region" in (told.value.hint or "")
