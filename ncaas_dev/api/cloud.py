"""The cloud steps: ``bake`` (the image into an AMI) and ``deploy`` (the analysis's stack).

Both work against LocalStack by default and against real AWS with ``cloud=True``.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .progress import OnProgress, emit
from .project import BlueprintLike, cached_build, loaded

if TYPE_CHECKING:
    from ..blueprint import LoadedBlueprint
    from ..cloud.bake.bake import BakeResult
    from ..cloud.deploy.deploy import DeployResult as DeployResult
    from ..settings import Settings


def target_settings(
    item: LoadedBlueprint,
    endpoint_url: str | None,
    cloud: bool,
    on_progress: OnProgress | None = None,
) -> Settings:
    """Where bake and deploy work: with ``cloud``, real AWS in the blueprint's region (settings
    that only make sense against LocalStack are refused); else LocalStack, started if need be."""
    from ..local.stack import start_localstack
    from ..settings import Settings, check_cloud_environment

    if cloud:
        check_cloud_environment(os.environ, endpoint_url)
        return replace(Settings.from_env(cloud=True), region=item.blueprint.cloud.region)
    settings = Settings.from_env(endpoint_url=endpoint_url)
    emit(on_progress, "step", "starting LocalStack")
    start_localstack(settings)
    return settings


def _require_account(
    item: LoadedBlueprint, *, dispatcher: bool, on_progress: OnProgress | None
) -> None:
    from ..cloud.quotas import require_account

    emit(on_progress, "step", "checking the account's quotas")
    require_account(item.blueprint, dispatcher=dispatcher)


class _Reporter:
    """Bake's reporter interface, passed on as ``Progress`` events."""

    def __init__(self, on_progress: OnProgress | None) -> None:
        self.on_progress = on_progress

    def step(self, title: str, total: int | None = None) -> None:
        emit(self.on_progress, "step", title, total=total)

    def advance(self, amount: int) -> None:
        emit(self.on_progress, "advance", amount=amount)

    def line(self, text: str) -> None:
        emit(self.on_progress, "line", text)


def bake_report(
    bp: BlueprintLike,
    cloud: bool = False,
    *,
    force: bool = False,
    endpoint_url: str | None = None,
    on_progress: OnProgress | None = None,
) -> BakeResult:
    """``bake``, returning everything it did (``BakeResult``: ami, image id, bake key, proof,
    timings, and ``baked`` False when the blueprint's AMI was already up to date)."""
    from ..cloud.bake.bake import bake as run_bake
    from ..cloud.bake.packer import packer_binary
    from ..containers import Engine, connect

    item = loaded(bp)
    packer_binary()  # before LocalStack starts: a missing Packer is the first thing to say
    engine = Engine(connect())
    settings = target_settings(item, endpoint_url, cloud, on_progress)
    if cloud:  # the account can launch the build instance, before anything is built
        _require_account(item, dispatcher=False, on_progress=on_progress)
    return run_bake(
        item, settings, engine, cloud=cloud, force=force, reporter=_Reporter(on_progress)
    )


def bake(
    bp: BlueprintLike,
    cloud: bool = False,
    *,
    force: bool = False,
    endpoint_url: str | None = None,
    on_progress: OnProgress | None = None,
) -> str:
    """Bake the analysis image into an AMI with Packer (LocalStack's EC2 unless ``cloud``),
    record it in blueprint.yaml as ``cloud.ami`` (comments kept); return the AMI id."""
    return bake_report(
        bp, cloud, force=force, endpoint_url=endpoint_url, on_progress=on_progress
    ).ami


def deploy_report(
    bp: BlueprintLike,
    cloud: bool = False,
    *,
    endpoint_url: str | None = None,
    on_progress: OnProgress | None = None,
) -> DeployResult:
    """``deploy``, returning everything it did (``DeployResult``: stack, checks, outputs)."""
    from ..analysis import AnalysisRecord, load_record, save_record
    from ..cloud.deploy.deploy import deploy as run_deploy

    item = loaded(bp)
    settings = target_settings(item, endpoint_url, cloud, on_progress)
    if cloud:  # quotas and offerings first: a stack that cannot work is not created
        _require_account(item, dispatcher=True, on_progress=on_progress)
    image_id: str | None = None
    if settings.local:
        # Locally, the runners start the image on this engine: build it now (as `up` does), so
        # a submission written straight into the bucket runs. In the cloud the AMI holds it.
        image_id = cached_build(item, settings.state_dir, on_progress)

    def on_event(event: dict[str, Any]) -> None:
        emit(on_progress, "resource", str(event.get("LogicalResourceId", "")), detail=event)

    result = run_deploy(item, settings, on_event=on_event)
    if image_id is not None:
        from ..aws import s3_client
        from ..storage import Storage

        storage = Storage(s3_client(settings), settings.endpoint_url)
        bucket = item.blueprint.bucket
        record = load_record(storage, bucket)
        if record is None or record.image_id is None:  # a record `run`/`up` wrote stays
            save_record(storage, AnalysisRecord.of(item, image_id), bucket)
    return result


def deploy(
    bp: BlueprintLike,
    cloud: bool = False,
    *,
    endpoint_url: str | None = None,
    on_progress: OnProgress | None = None,
) -> dict[str, str]:
    """Create or update the analysis's stack (bucket, group access, dispatcher, instance role)
    with CloudFormation: LocalStack unless ``cloud``. Locally the image is built as well, so a
    submission runs once the dispatcher does (``up()``). Returns the stack's outputs
    (``BucketName``, ``InstanceProfileName``, ...). Raises ``NcaasError`` if a resource the
    stack reported is missing."""
    from ..errors import NcaasError

    result = deploy_report(bp, cloud, endpoint_url=endpoint_url, on_progress=on_progress)
    if result.missing:
        names = ", ".join(c.logical_id for c in result.missing)
        raise NcaasError(f"deploy of {result.stack_name}: reported created but missing: {names}")
    return dict(result.outputs)
