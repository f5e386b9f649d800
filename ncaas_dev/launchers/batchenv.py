"""The Batch resources a dataset's job needs: the queue, its compute environment, the job
definition. In the cloud ``deploy --cloud`` makes them (cloud/deploy/batch.py); against the
local Batch server (moto) the launcher makes them itself on first use, idempotently."""

from __future__ import annotations

import os
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import NcaasError
from ..settings import PROJECT_ROOT, Settings
from .base import DatasetTask
from .batchjob import (
    NAME_PREFIX,
    STAGING_MARGIN_S,
    definition_name,
    queue_name,
    resource_requirements,
    retry_strategy,
    runner_command,
)

# The image the runner runs in locally: the project's base (Python 3.11, as the host's venv),
# with ncaas-dev and its libraries mounted read-only from the host, always the sources at hand.
RUNNER_IMAGE = os.environ.get("NCAAS_BATCH_RUNNER_IMAGE", "ncaas/base:bookworm")
DOCKER_SOCKET = Path("/var/run/docker.sock")
SERVICE_ROLE = "ncaas-batch-service"


def compute_environment_name(analysis: str) -> str:
    return f"{NAME_PREFIX}{analysis}"


def _trust(service: str) -> str:
    import json

    statement = {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def runner_mounts(settings: Settings) -> list[tuple[str, Path, bool]]:
    """(name, host path, read-only): the same paths inside, so the analysis container the
    runner starts on the host's Docker binds host paths."""
    site = Path(sysconfig.get_paths()["purelib"])
    return [
        ("docker", DOCKER_SOCKET, False),
        ("source", PROJECT_ROOT, True),
        ("libraries", site, True),
        ("jobs", settings.jobs_dir, False),
    ]


def container_properties(task: DatasetTask, settings: Settings) -> dict[str, Any]:
    """The runner's container: the host's ncaas-dev, its Docker and its job folder."""
    mounts = runner_mounts(settings)
    site = mounts[2][1]
    env = {
        "PYTHONPATH": f"{PROJECT_ROOT}:{site}",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": "/tmp",
        "NCAAS_STATE_DIR": str(settings.state_dir),
        "AWS_DEFAULT_REGION": settings.region,
        "AWS_ACCESS_KEY_ID": "test",  # LocalStack's; in the cloud the job role's instead
        "AWS_SECRET_ACCESS_KEY": "test",
    }
    if settings.analysis_network:
        env["NCAAS_ANALYSIS_NETWORK"] = settings.analysis_network
    try:
        docker_gid: int | None = DOCKER_SOCKET.stat().st_gid
    except OSError:
        docker_gid = None
    return {
        "image": RUNNER_IMAGE,
        "command": runner_command(os.getuid(), os.getgid(), docker_gid),
        "environment": [{"name": k, "value": v} for k, v in sorted(env.items())],
        "resourceRequirements": resource_requirements(task),
        "volumes": [{"name": n, "host": {"sourcePath": str(p)}} for n, p, _ in mounts],
        "mountPoints": [
            {"sourceVolume": n, "containerPath": str(p), "readOnly": ro} for n, p, ro in mounts
        ],
    }


@dataclass
class BatchResources:
    """Made once per analysis and definition per dispatcher (then remembered)."""

    batch: Any
    iam: Any
    settings: Settings
    _ready: set[str] = field(default_factory=set)
    _environments: dict[str, str | None] = field(default_factory=dict)

    def ensure(self, task: DatasetTask) -> tuple[str, str]:
        """The job queue and the job definition of ``task``'s analysis, made if missing."""
        queue, definition = queue_name(task), definition_name(task)
        if queue not in self._ready:
            if self.settings.local and not task.record.blueprint.batch.job_queue:
                self._local_queue(task.record.blueprint.analysis, queue)
            self._ready.add(queue)
        if definition not in self._ready:
            self._definition(task, definition)
            self._ready.add(definition)
        return queue, definition

    def compute_environment(self, queue: str) -> str | None:
        """The queue's first compute environment (for provenance), asked once per queue."""
        if queue not in self._environments:
            found = self.batch.describe_job_queues(jobQueues=[queue]).get("jobQueues", [])
            orders = [o for q in found for o in q.get("computeEnvironmentOrder", [])]
            first = str(orders[0]["computeEnvironment"]).rsplit("/", 1)[-1] if orders else None
            self._environments[queue] = first
        return self._environments[queue]

    def _local_queue(self, analysis: str, queue: str) -> None:
        if self.batch.describe_job_queues(jobQueues=[queue]).get("jobQueues"):
            return
        role = self._service_role()
        name = compute_environment_name(analysis)
        if not self.batch.describe_compute_environments(computeEnvironments=[name]).get(
            "computeEnvironments"
        ):
            # moto schedules nothing, so an unmanaged environment stands for the managed
            # one deploy makes in the cloud (docs/batch.md, what the offline proof skips).
            self.batch.create_compute_environment(
                computeEnvironmentName=name, type="UNMANAGED", state="ENABLED", serviceRole=role
            )
        self.batch.create_job_queue(
            jobQueueName=queue,
            state="ENABLED",
            priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": name}],
        )

    def _service_role(self) -> str:
        try:
            return str(self.iam.get_role(RoleName=SERVICE_ROLE)["Role"]["Arn"])
        except self.iam.exceptions.NoSuchEntityException:
            made = self.iam.create_role(
                RoleName=SERVICE_ROLE, AssumeRolePolicyDocument=_trust("batch.amazonaws.com")
            )
            return str(made["Role"]["Arn"])

    def _definition(self, task: DatasetTask, name: str) -> None:
        active = self.batch.describe_job_definitions(jobDefinitionName=name, status="ACTIVE")
        if active.get("jobDefinitions"):
            return  # content-addressed: the same image and blueprint, the same definition
        if not self.settings.local:
            raise NcaasError(
                f"AWS Batch has no job definition {name} for this analysis",
                hint="run `ncaas-dev deploy BLUEPRINT --cloud` after bake (docs/batch.md)",
            )
        blueprint_seconds = task.record.blueprint.run.timeout + STAGING_MARGIN_S
        self.batch.register_job_definition(
            jobDefinitionName=name,
            type="container",
            containerProperties=container_properties(task, self.settings),
            retryStrategy=retry_strategy(task.record.blueprint.batch.retries),
            # Each job sets its own (a config's __duration__ may shorten it); this is the most.
            timeout={"attemptDurationSeconds": blueprint_seconds},
            tags={"ncaas:analysis": task.record.blueprint.analysis},
        )


def spot_price(ec2: Any, instance_type: str) -> float | None:
    """The highest current Linux spot price of ``instance_type`` across the region's zones
    (what a spot attempt is charged at; the budget reserved on-demand), or None if AWS
    reports none."""
    try:
        history = ec2.describe_spot_price_history(
            InstanceTypes=[instance_type],
            ProductDescriptions=["Linux/UNIX"],
            MaxResults=100,
        ).get("SpotPriceHistory", [])
    except Exception:  # no permission, no such type: charge the reservation's price
        return None
    latest: dict[str, float] = {}
    for entry in sorted(history, key=lambda e: e["Timestamp"]):
        latest[str(entry.get("AvailabilityZone"))] = float(entry["SpotPrice"])
    return max(latest.values()) if latest else None
