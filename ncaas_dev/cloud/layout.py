"""What bake, the EC2 launcher, user-data and deploy agree on.

The baked AMI holds the analysis image (already loaded into Docker) and the same ncaas-dev
as the job runner, at fixed paths; the AMI and instances carry ``ncaas:`` tags; a deployed
stack leaves a record in the analysis's bucket so the launcher finds the instance profile.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from ..storage import NotFound, Storage

# On the instance (written by bake's provisioning, read by user-data).
NCAAS_HOME = "/opt/ncaas"
RUNNER_PYTHON = f"{NCAAS_HOME}/venv/bin/python"  # ncaas-dev installed in its own venv
RUNNER_IMAGE = "ncaas/runner:baked"  # on the AMI: the image Batch jobs run the runner in
BAKE_MANIFEST = f"{NCAAS_HOME}/baked.json"  # what was baked: image id, blueprint hash, version

# Tags on AMIs and instances.
TAG_ANALYSIS = "ncaas:analysis"
TAG_BUCKET = "ncaas:bucket"  # on instances: the bucket they serve (cloud.bucket, else analysis)
TAG_GROUP = "ncaas:group"
TAG_JOB = "ncaas:job"
TAG_DATASET = "ncaas:dataset"
TAG_IMAGE_ID = "ncaas:image-id"  # on the AMI: the Docker image id it was baked from
TAG_BAKE_KEY = "ncaas:bake-key"  # on the AMI: image id + blueprint content (minus cloud.ami)
TAG_VERSION = "ncaas:version"

STACK_RECORD = ".ncaas/stack.json"


def local_instance_profile(analysis: str) -> str:
    """The profile the local stack creates when no stack was deployed (LocalStack only)."""
    return f"ncaas-{analysis}-local-runner"


class StackRecord(BaseModel):
    """Left by ``ncaas-dev deploy`` in the analysis's bucket."""

    stack_name: str
    instance_profile: str  # name (not ARN) of the instance profile runners get
    dispatcher_function: str | None = None
    outputs: dict[str, str] = {}


def save_stack_record(storage: Storage, bucket: str, record: StackRecord) -> None:
    storage.put_json(bucket, STACK_RECORD, record.model_dump(mode="json"))


def load_stack_record(storage: Storage, bucket: str) -> StackRecord | None:
    try:
        doc, _ = storage.get_json(bucket, STACK_RECORD)
    except NotFound:
        return None
    return StackRecord.model_validate(doc)


def tags_of(resource: Mapping[str, Any]) -> dict[str, str]:
    """An EC2 description's ``Tags`` list as a mapping."""
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}
