"""What the EC2 launcher asks RunInstances for (issue 13, defects 11 and 12), offline in moto:
the parameters are captured as botocore sends them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from moto_world import BUCKET, aws, client, provision, submit  # noqa: F401 (aws: a fixture)

from ncaas_dev.cloud.ec2.images import snapshot_gb
from ncaas_dev.cloud.ec2.userdata import (
    VOLUME_INIT_MIB_S,
    WATCHDOG_MARGIN_S,
    WORST_CASE_MIB_S,
    watchdog_seconds,
)
from ncaas_dev.dispatch.dispatcher import Dispatcher
from ncaas_dev.launchers.ec2 import Ec2Launcher, root_volume_gb
from ncaas_dev.settings import Settings
from ncaas_dev.storage import Storage


def _launch(tmp_path: Path, **blueprint: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Launch one dataset; returns RunInstances' parameters and the AMI's description."""
    s3, ec2, iam = client("s3"), client("ec2"), client("iam")
    storage = Storage(s3, None)
    provision(storage, ec2, iam, **blueprint)
    sent: list[dict[str, Any]] = []

    def big_snapshot(parsed: dict[str, Any], **_: Any) -> None:
        """The AMI's root snapshot is 75 GiB (a Deep Learning AMI's size; moto says 15)."""
        for image in parsed.get("Images", []):
            for mapping in image.get("BlockDeviceMappings", []):
                mapping.setdefault("Ebs", {})["VolumeSize"] = 75

    ec2.meta.events.register("after-call.ec2.DescribeImages", big_snapshot)
    ec2.meta.events.register(
        "provide-client-params.ec2.RunInstances", lambda params, **_: sent.append(dict(params))
    )
    settings = Settings(endpoint_url=None, region="us-east-1", state_dir=tmp_path)
    launcher = Ec2Launcher(settings, storage, ec2, iam)
    Dispatcher(storage, launcher, None, "us-east-1", sweep_interval=1e9).handle(submit(storage))
    (params,) = sent
    (image,) = ec2.describe_images(ImageIds=[params["ImageId"]])["Images"]
    return params, image


@pytest.mark.usefixtures("aws")
def test_the_root_volume_is_never_smaller_than_the_amis_snapshot(tmp_path: Path) -> None:
    params, image = _launch(tmp_path, cloud={"volume_gb": 1})
    (mapping,) = params["BlockDeviceMappings"]
    assert mapping["DeviceName"] == image["RootDeviceName"]
    assert mapping["Ebs"]["VolumeSize"] == snapshot_gb(image) == 75


@pytest.mark.usefixtures("aws")
def test_containers_cannot_reach_the_instance_role(tmp_path: Path) -> None:
    """Issue 13, defect 12: IMDSv2 required, and one hop, so a container cannot get a token."""
    params, _ = _launch(tmp_path)
    assert params["MetadataOptions"] == {
        "HttpTokens": "required",
        "HttpEndpoint": "enabled",
        "HttpPutResponseHopLimit": 1,
    }


@pytest.mark.usefixtures("aws")
def test_the_volume_initialises_at_a_rate_and_the_watchdog_scales_with_the_data(
    tmp_path: Path,
) -> None:
    """Issue 13, defect 6: gp3 above baseline, EBS's initialisation rate instead of reading
    the volume at boot, and a watchdog margin that grows with the dataset."""
    params, _ = _launch(tmp_path, cloud={"volume_gb": 100}, run={"timeout": 60})
    (mapping,) = params["BlockDeviceMappings"]
    ebs = mapping["Ebs"]
    assert ebs["VolumeType"] == "gp3" and ebs["Throughput"] >= VOLUME_INIT_MIB_S
    assert ebs["Iops"] >= 3000 and ebs["VolumeInitializationRate"] == VOLUME_INIT_MIB_S
    script = params["UserData"]
    assert 'NCAAS_PREWARM:-0}" = 1' in script  # the rate does it; no read at boot
    initialise = -(-ebs["VolumeSize"] * 1024 // VOLUME_INIT_MIB_S)
    assert f"sleep {60 + WATCHDOG_MARGIN_S + 1 + initialise};" in script  # 100 B: 1 s


def test_the_watchdog_margin_grows_with_the_dataset(make_task: Any) -> None:
    task = make_task(run={"timeout": 60})
    gib = 1024**3
    small, large = watchdog_seconds(task, 0), watchdog_seconds(task, 100 * gib)
    assert small == 60 + WATCHDOG_MARGIN_S
    assert large - small == 2 * 100 * 1024 // WORST_CASE_MIB_S  # down and up at 50 MiB/s
    assert watchdog_seconds(task, 0, 300) - small == 300 * 1024 // VOLUME_INIT_MIB_S


def test_root_volume_takes_the_largest_need() -> None:
    assert root_volume_gb(0, 8, snapshot_gb=75) == 75
    assert root_volume_gb(0, 200, snapshot_gb=75) == 200
    # resources.disk: room for the dataset and what the analysis may write
    assert root_volume_gb(2 * 1024**3, 100, disk_bytes=500 * 1024**3) == 16 + 502
    assert root_volume_gb(0, 100, disk_bytes=1024**3) == 100
    image = {
        "RootDeviceName": "/dev/sda1",
        "BlockDeviceMappings": [
            {"DeviceName": "/dev/sdb", "Ebs": {"VolumeSize": 500}},
            {"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 75}},
        ],
    }
    assert snapshot_gb(image) == 75
    assert snapshot_gb({}) == 0


def test_the_bake_volume_covers_the_newest_source_snapshot(tmp_path: Path) -> None:
    """Issue 13, defect 11 in bake: Packer picks the newest match; its snapshot bounds the size."""
    import boto3
    from botocore.stub import Stubber

    from ncaas_dev.cloud.bake import packer
    from ncaas_dev.cloud.bake.amis import source_snapshot_gb

    ec2 = boto3.client(
        "ec2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    settings = Settings(endpoint_url=None, region="us-east-1", state_dir=tmp_path)
    wanted = packer.source_ami(None, gpu=True)

    def image(day: str, size: int) -> dict[str, Any]:
        return {
            "ImageId": f"ami-{day}0000000",
            "CreationDate": f"2026-01-{day}T00:00:00.000Z",
            "RootDeviceName": "/dev/sda1",
            "BlockDeviceMappings": [{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": size}}],
        }

    with Stubber(ec2) as stub:
        stub.add_response("describe_images", {"Images": [image("10", 60), image("20", 75)]})
        assert source_snapshot_gb(ec2, wanted, settings) == 75


# -- issue 13, defect 10: no default VPC assumed -----------------------------------------------
@pytest.mark.usefixtures("aws")
def test_the_blueprints_subnet_and_security_groups_are_used(tmp_path: Path) -> None:
    ec2 = client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="runners", Description="r", VpcId=vpc)["GroupId"]
    cloud = {"subnet_id": subnet, "security_group_ids": [group]}
    params, _ = _launch(tmp_path, cloud=cloud)
    assert params["SubnetId"] == subnet and params["SecurityGroupIds"] == [group]


@pytest.mark.usefixtures("aws")
def test_a_type_the_zone_does_not_offer_gets_a_reason_naming_the_zones(tmp_path: Path) -> None:
    from botocore.exceptions import ClientError

    from ncaas_dev.jobstore import JobStore

    def unsupported(**_: Any) -> None:
        message = "Your requested instance type (m5.xlarge) is not supported in us-east-1e."
        raise ClientError({"Error": {"Code": "Unsupported", "Message": message}}, "RunInstances")

    s3, ec2, iam = client("s3"), client("ec2"), client("iam")
    storage = Storage(s3, None)
    provision(storage, ec2, iam)
    ec2.meta.events.register("before-call.ec2.RunInstances", unsupported)
    settings = Settings(endpoint_url=None, region="us-east-1", state_dir=tmp_path)
    dispatcher = Dispatcher(storage, Ec2Launcher(settings, storage, ec2, iam), None, "us-east-1")
    job = dispatcher.handle(submit(storage)).job or ""
    ds = JobStore(storage, BUCKET).read("labA", job).datasets["d.bin"]
    assert ds.state.value == "failed"
    assert "set cloud.subnet_id to a subnet in one of them" in (ds.reason or "")
    assert "us-east-1a" in (ds.reason or "")


@pytest.mark.usefixtures("aws")
def test_the_boot_log_lands_beside_the_datasets_log(tmp_path: Path, make_task: Any) -> None:
    """Issue 13, defect 12: cloud-init's output, shipped by the instance before power-off."""
    from ncaas_dev.cloud.ec2 import bootlog

    s3 = client("s3")
    task = make_task()
    s3.create_bucket(Bucket=task.bucket)
    log = tmp_path / "cloud-init-output.log"
    log.write_bytes(b"x" * (bootlog.MAX_BYTES + 10) + b"\ndocker: failed to start\n")
    task_file = tmp_path / "task.json"
    task_file.write_text(task.model_dump_json())
    assert bootlog.main([str(task_file), str(log)]) == 0
    key = f"labA/results/{task.job}/logs/{task.dataset}.boot.log"
    body = s3.get_object(Bucket=task.bucket, Key=key)["Body"].read()
    assert body.endswith(b"docker: failed to start\n") and len(body) == bootlog.MAX_BYTES
    assert bootlog.main([str(task_file), str(tmp_path / "none")]) == 0  # no log: no failure


def test_a_rebake_keeps_the_newest_two_amis_and_drops_the_rest(tmp_path: Path) -> None:
    """Issue 13, defect 12: older AMIs of the analysis are deregistered, their snapshots
    deleted; the new one and the one before it stay."""
    import boto3
    from botocore.stub import ANY, Stubber

    from ncaas_dev.cloud.bake.amis import prune_amis

    ec2 = boto3.client(
        "ec2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    settings = Settings(endpoint_url=None, region="us-east-1", state_dir=tmp_path)

    def image(n: int) -> dict[str, Any]:
        return {
            "ImageId": f"ami-{n}000000000000000",
            "CreationDate": f"2026-0{n}-01T00:00:00.000Z",
            "BlockDeviceMappings": [
                {"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": f"snap-{n}"}}
            ],
        }

    images = [image(n) for n in (3, 1, 4, 2)]  # 4: the bake that just ran
    with Stubber(ec2) as stub:
        stub.add_response(
            "describe_images", {"Images": images}, {"Owners": ["self"], "Filters": ANY}
        )
        for n in (1, 2):  # oldest first
            stub.add_response("deregister_image", {}, {"ImageId": f"ami-{n}000000000000000"})
            stub.add_response("delete_snapshot", {}, {"SnapshotId": f"snap-{n}"})
        pruned = prune_amis(ec2, "spikes", "ami-4000000000000000", settings, keep=2)
        stub.assert_no_pending_responses()
    assert pruned == ["ami-1000000000000000", "ami-2000000000000000"]
