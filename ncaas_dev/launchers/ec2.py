"""The cloud launcher: one EC2 instance per dataset, started from the baked AMI.

The instance's user-data runs the same job runner the Docker launcher starts locally, then
powers the instance off (``InstanceInitiatedShutdownBehavior=terminate``). Everything the
launcher needs to know lives in EC2 itself (tags) and in the analysis's bucket, so a restarted
dispatcher, or a stateless Lambda, counts and watches the same instances.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..analysis import load_record
from ..cloud.deploy.policies import trust_policy
from ..cloud.ec2.api import LIVE_STATES, Ec2Regions
from ..cloud.ec2.images import check_ami, snapshot_gb
from ..cloud.ec2.refusals import error_code, explained, is_retryable, unsupported_here
from ..cloud.ec2.signing import TAG_PROOF, launch_proof, stack_secret
from ..cloud.ec2.userdata import VOLUME_INIT_MIB_S, render_user_data, watchdog_seconds
from ..cloud.layout import (
    TAG_ANALYSIS,
    TAG_BUCKET,
    TAG_DATASET,
    TAG_GROUP,
    TAG_JOB,
    load_stack_record,
    local_instance_profile,
    tags_of,
)
from ..errors import NcaasError
from ..layout import is_folder_key
from ..settings import Settings
from ..storage import Storage
from .base import DatasetTask, Finished, RetryableLaunchError

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_iam import IAMClient

log = logging.getLogger(__name__)

ENDED_STATES = {"shutting-down", "terminated", "stopped"}
GIB = 1024**3
# The OS, Docker and the baked image, plus the dataset twice (the input and room for outputs).
SYSTEM_GB = 16
# DescribeInstances is eventually consistent: an instance it does not list yet this long after
# its launch is "unknown", not gone.
NOT_FOUND_GRACE_S = 300.0
# gp3 above its baseline (125 MiB/s, 3000 IOPS): the disk keeps up with the volume's
# initialisation rate and with the dataset's download.
GP3_THROUGHPUT_MIB_S = 300
GP3_IOPS = 4000


@dataclass
class _Watched:
    task: DatasetTask
    region: str
    since: float  # when it was launched (epoch seconds), for the NotFound grace


def root_volume_gb(
    dataset_bytes: int, volume_gb: int, snapshot_gb: int = 0, disk_bytes: int | None = None
) -> int:
    """The blueprint's volume, or more when the dataset needs it or resources.disk says the
    analysis may write more, never less than the AMI's root snapshot (EC2 refuses a volume
    smaller than its snapshot) (pure)."""
    writes = SYSTEM_GB + math.ceil((dataset_bytes + (disk_bytes or dataset_bytes)) / GIB)
    return max(volume_gb, snapshot_gb, writes)


def client_token(task: DatasetTask) -> str:
    """Idempotency: a launch retried for the same dataset of the same job gets the same instance."""
    return hashlib.sha256(task.label.encode()).hexdigest()[:64]


def _tags(task: DatasetTask, **extra: str) -> list[dict[str, str]]:
    pairs = {
        "Name": f"ncaas {task.bucket} {task.job} {task.dataset}"[:255],
        TAG_ANALYSIS: task.record.blueprint.analysis,
        TAG_BUCKET: task.bucket,
        TAG_GROUP: task.group,
        TAG_JOB: task.job,
        TAG_DATASET: task.dataset[:255],
        **extra,
    }
    return [{"Key": k, "Value": v} for k, v in pairs.items()]


def _tag_specifications(task: DatasetTask, proof: str | None = None) -> list[Any]:
    """The dataset's tags; on the instance also the stand-in's launch proof (local only)."""
    on_instance = {TAG_PROOF: proof} if proof else {}
    return [
        {"ResourceType": "instance", "Tags": _tags(task, **on_instance)},
        {"ResourceType": "volume", "Tags": _tags(task)},
    ]


class Ec2Launcher:
    name = "ec2"
    runner_announces_itself = False

    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        ec2: EC2Client | None = None,
        iam: IAMClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from ..aws import iam_client

        self.settings = settings
        self.storage = storage
        # Each analysis launches in its blueprint's cloud.region, where bake registered its AMI.
        self.regions = Ec2Regions(settings, ec2)
        self.iam = iam or iam_client(settings)
        self.clock = clock
        self._live: dict[str, _Watched] = {}  # instance id -> its dataset
        self._adopted = False

    # -- launching ---------------------------------------------------------------------------
    def launch(self, task: DatasetTask) -> str:
        blueprint = task.record.blueprint
        ami = blueprint.cloud.ami
        if not ami:
            raise NcaasError(
                f"the blueprint of {blueprint.analysis} has no cloud.ami, so there is no machine "
                "image to start: run `ncaas-dev bake BLUEPRINT_DIR` and deploy again"
            )
        region = blueprint.cloud.region
        ec2 = self.regions.client(region)
        image = check_ami(ec2, ami, task.record.image_id, region, self.settings)
        root_device = image.get("RootDeviceName") or "/dev/sda1"
        if is_folder_key(task.data_key):  # a folder dataset: every object under it
            size = sum(o.size for o in self.storage.list_objects(task.bucket, task.data_key))
        else:
            info = self.storage.head(task.bucket, task.data_key)
            size = info.size if info else 0
        volume = root_volume_gb(
            size, blueprint.cloud.volume_gb, snapshot_gb(image), blueprint.resources.disk
        )
        try:
            watchdog = watchdog_seconds(task, size, volume)
            user_data = render_user_data(task, watchdog, prewarm=False)
        except ValueError as e:  # over EC2's limit: no retry can help
            raise NcaasError(str(e)) from e
        try:
            reply = self._run_instances(ec2, task, ami, root_device, volume, user_data)
        except NcaasError as e:
            if is_retryable(e.__cause__):
                raise RetryableLaunchError(explained(e.message, e.__cause__)) from e.__cause__
            if error_code(e.__cause__) == "Unsupported":  # the type is not offered in that AZ
                raise NcaasError(unsupported_here(ec2, task, e.message)) from e.__cause__
            raise
        instance = reply["Instances"][0]["InstanceId"]
        self._live[instance] = _Watched(task, region, self.clock())
        log.info("%s: launched %s (%s, %d GiB)", task.label, instance, ami, volume)
        return f"ec2:{instance}"

    def _run_instances(
        self, ec2: EC2Client, task: DatasetTask, ami: str, root_device: str, volume: int,
        user_data: str,
    ) -> Any:  # fmt: skip
        blueprint = task.record.blueprint
        where: dict[str, Any] = {}
        if blueprint.cloud.subnet_id:
            where["SubnetId"] = blueprint.cloud.subnet_id
        if blueprint.cloud.security_group_ids:
            where["SecurityGroupIds"] = list(blueprint.cloud.security_group_ids)
        proof = None
        if self.settings.local:  # the stand-in runs only what this stack launched
            secret = stack_secret(self.settings.state_dir)
            proof = launch_proof(secret, user_data.encode())
        with self.regions.errors("RunInstances"):
            return ec2.run_instances(
                **where,
                ImageId=ami,
                InstanceType=task.cloud_instance_type,  # type: ignore[arg-type]
                MinCount=1,
                MaxCount=1,
                ClientToken=client_token(task),
                UserData=user_data,
                IamInstanceProfile={"Name": self._instance_profile(task)},
                InstanceInitiatedShutdownBehavior="terminate",
                BlockDeviceMappings=[
                    {
                        "DeviceName": root_device,
                        "Ebs": {
                            "VolumeSize": volume,
                            "VolumeType": "gp3",
                            "Throughput": GP3_THROUGHPUT_MIB_S,
                            "Iops": GP3_IOPS,
                            # The snapshot's blocks arrive at this rate, not lazily on
                            # first read (the image would start at a crawl).
                            "VolumeInitializationRate": VOLUME_INIT_MIB_S,
                            "DeleteOnTermination": True,
                            "Encrypted": True,
                        },
                    }
                ],
                # IMDSv2 only, one hop: a container (run.network: true) is a hop further
                # away, so it cannot take the instance role's credentials.
                MetadataOptions={
                    "HttpTokens": "required",
                    "HttpEndpoint": "enabled",
                    "HttpPutResponseHopLimit": 1,
                },
                TagSpecifications=_tag_specifications(task, proof),
            )

    def _instance_profile(self, task: DatasetTask) -> str:
        stack = load_stack_record(self.storage, task.bucket)
        if stack is not None:
            return stack.instance_profile
        if not self.settings.local:
            raise NcaasError(
                f"analysis {task.bucket} has no deployed stack, so its instances have no role: "
                "run `ncaas-dev deploy BLUEPRINT_DIR --cloud` first"
            )
        return self._ensure_local_profile(task.bucket)

    def _ensure_local_profile(self, analysis: str) -> str:
        """LocalStack only: a role and profile so RunInstances has one to name (it checks)."""
        name = local_instance_profile(analysis)
        with self.regions.errors(f"create instance profile {name}"):
            try:
                self.iam.get_instance_profile(InstanceProfileName=name)
                return name
            except self.iam.exceptions.NoSuchEntityException:
                pass
            trust = json.dumps(trust_policy("ec2.amazonaws.com"))
            try:
                self.iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)
                self.iam.create_instance_profile(InstanceProfileName=name)
                self.iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
            except self.iam.exceptions.EntityAlreadyExistsException:
                pass  # another dispatcher made it at the same moment
        return name

    # -- watching ----------------------------------------------------------------------------
    def active(self, bucket: str) -> int:
        """Counted in EC2, not in memory: instances a previous dispatcher started count too."""
        ours = {f"tag:{TAG_BUCKET}": [bucket]}
        return sum(
            sum(1 for _ in self.regions.instances(region, **ours, instance_state_name=LIVE_STATES))
            for region in self.regions.known
        )

    def _adopt(self) -> None:
        """Watch the live instances an earlier dispatcher launched, so none ends unnoticed."""
        self._adopted = True
        region = self.settings.region
        ours = self.regions.instances(region, tag_key=[TAG_JOB], instance_state_name=LIVE_STATES)
        for instance in ours:
            tags = tags_of(instance)
            if instance["InstanceId"] in self._live:
                continue
            try:
                task = self._task_from_tags(tags)
            except NcaasError as e:
                log.warning("not adopting %s: %s", instance["InstanceId"], e)
                continue
            if task is not None:
                launched = instance.get("LaunchTime")
                since = launched.timestamp() if launched else self.clock()
                self._live[instance["InstanceId"]] = _Watched(task, region, since)
                log.info("%s: watching %s, launched earlier", task.label, instance["InstanceId"])

    def _task_from_tags(self, tags: dict[str, str]) -> DatasetTask | None:
        bucket = tags.get(TAG_BUCKET)
        if not bucket or not all(k in tags for k in (TAG_GROUP, TAG_JOB, TAG_DATASET)):
            return None
        record = load_record(self.storage, bucket)
        if record is None:
            return None
        return DatasetTask(
            bucket=bucket,
            group=tags[TAG_GROUP],
            job=tags[TAG_JOB],
            dataset=tags[TAG_DATASET],
            data_key="",
            config_key=None,
            record=record,
            endpoint_url=self.settings.endpoint_url,
            region=self.settings.region,
        )

    def watch(self, task: DatasetTask, runner: str, since: float) -> None:
        """Watch the instance of a dataset the sweep found not finished (launched ``since``),
        whichever dispatcher launched it: one that died while nobody watched ends lost."""
        instance_id = runner.removeprefix("ec2:")
        if not runner.startswith("ec2:i-") or instance_id in self._live:
            return
        self._live[instance_id] = _Watched(task, task.record.blueprint.cloud.region, since)

    def reap(self) -> list[Finished]:
        """Instances of ours that ended; the dispatcher fails their dataset if it never finished.
        One DescribeInstances does not list yet is not gone until NOT_FOUND_GRACE_S after its
        launch (EC2 is eventually consistent)."""
        if not self._adopted:
            self._adopt()
        if not self._live:
            return []
        seen: dict[str, dict[str, Any]] = {}
        ids = list(self._live)
        for region in {w.region for w in self._live.values()}:
            here = [i for i in ids if self._live[i].region == region]
            for start in range(0, len(here), 200):
                batch = here[start : start + 200]
                for instance in self.regions.instances(region, instance_id=batch):
                    seen[instance["InstanceId"]] = instance
        ended: list[Finished] = []
        now = self.clock()
        for instance_id in ids:
            instance = seen.get(instance_id, {})
            state = instance["State"]["Name"] if instance else "not found"
            if not instance and now - self._live[instance_id].since < NOT_FOUND_GRACE_S:
                continue  # unknown: not listed yet
            if instance and state not in ENDED_STATES:
                continue
            task = self._live.pop(instance_id).task
            why = instance.get("StateReason", {}).get("Message", "")
            detail = f"instance lost: {instance_id} is {state}" + (f" ({why})" if why else "")
            ended.append(Finished(task, f"ec2:{instance_id}", None, detail))
        return ended

    def cancel(self, task: DatasetTask, runner: str | None) -> None:
        """Terminate the dataset's instance (by the recorded id, and by its tags, for one
        whose id was not recorded yet); ``reap`` then sees it end and the dataset is settled
        as cancelled. The instance's runner has no time to upload partial outputs."""
        region = task.record.blueprint.cloud.region
        ids = {runner.removeprefix("ec2:")} if runner and runner.startswith("ec2:i-") else set()
        tagged = {
            f"tag:{TAG_BUCKET}": [task.bucket],
            f"tag:{TAG_JOB}": [task.job],
            f"tag:{TAG_DATASET}": [task.dataset[:255]],
        }
        for instance in self.regions.instances(region, **tagged, instance_state_name=LIVE_STATES):
            ids.add(instance["InstanceId"])
        if not ids:
            return
        with self.regions.errors(f"terminate the instance of {task.label}"):
            self.regions.client(region).terminate_instances(InstanceIds=sorted(ids))
        log.info("%s: terminated %s (cancel request)", task.label, ", ".join(sorted(ids)))

    def shutdown(self) -> None:
        """Instances run on and terminate themselves; nothing to stop."""
        self._live.clear()
