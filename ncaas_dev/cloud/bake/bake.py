"""Bake an analysis into an AMI: its image loaded into Docker, the same ncaas-dev as the runner.

Content-addressed: an AMI whose ``ncaas:bake-key`` tag equals the bake key (``key.py``) is up
to date and is not baked again.

Locally Packer registers the AMI in LocalStack's EC2 (nothing can boot there), and the same
provisioning scripts run in a container standing in for the instance; the bake succeeds only
when what that stand-in reports matches what was baked. ``--cloud`` provisions a real instance
over SSH and checks the same report from it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ... import __version__
from ...blueprint import BLUEPRINT_FILE, LoadedBlueprint
from ...containers import Engine
from ...errors import NcaasError, UsageError
from ...settings import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY, Settings
from ..layout import RUNNER_PYTHON, TAG_BAKE_KEY, tags_of
from . import packer
from .amis import (
    check_cloud_access,
    describe_ami,
    ec2_client,
    local_source_ami,
    prune_amis,
    source_snapshot_gb,
)
from .key import ami_name, bake_key, baked_manifest
from .payload import Reporter, build_wheelhouse, save_image, stage_payload, wheel_cache
from .proof import packer_log, provision_and_check
from .record import write_ami
from .runnerimage import build_runner_image


class QuietReporter:
    def step(self, title: str, total: int | None = None) -> None:
        pass

    def advance(self, amount: int) -> None:
        pass

    def line(self, text: str) -> None:
        pass


@dataclass(frozen=True)
class BakeResult:
    ami: str
    region: str
    image_id: str
    bake_key: str
    baked: bool  # False: the blueprint's AMI was already up to date
    seconds: float
    blueprint: Path
    source_ami: str = ""
    proof: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "ami": self.ami,
            "region": self.region,
            "image_id": self.image_id,
            "bake_key": self.bake_key,
            "baked": self.baked,
            "seconds": round(self.seconds, 2),
            "blueprint": str(self.blueprint),
            "source_ami": self.source_ami,
            "proof": self.proof,
            "timings": {k: round(v, 2) for k, v in self.timings.items()},
        }


# -- the bake --------------------------------------------------------------------------------
@dataclass
class _Clock:
    timings: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def phase(self, name: str) -> Any:
        started = time.monotonic()
        try:
            yield
        finally:
            self.timings[name] = time.monotonic() - started


def bake(
    loaded: LoadedBlueprint,
    settings: Settings,
    engine: Engine,
    *,
    cloud: bool = False,
    force: bool = False,
    reporter: Reporter | None = None,
) -> BakeResult:
    """Bake ``loaded`` into an AMI (LocalStack's EC2 unless ``cloud``) and record it in the
    blueprint; an AMI with the same bake key is up to date unless ``force``."""
    started = time.monotonic()
    say: Reporter = reporter or QuietReporter()
    clock = _Clock()
    if not cloud and not settings.endpoint_url:
        raise UsageError("a local bake needs LocalStack's endpoint", hint="or use --cloud")
    packer.packer_binary()  # fail before any long work when Packer is missing
    blueprint = loaded.blueprint
    region = blueprint.cloud.region
    ec2 = ec2_client(settings, region)
    if cloud:
        check_cloud_access(ec2, settings, region)  # before anything is built or started
    blueprint_path = loaded.folder / BLUEPRINT_FILE

    text = blueprint_path.read_text()
    with clock.phase("build_image"):
        say.step(f"building {blueprint.image_tag}")
        image_id = engine.build(loaded, on_line=say.line)
    key = bake_key(image_id, text, __version__, packer.recipe_hash())

    def result(ami: str, baked: bool, **extra: Any) -> BakeResult:
        return BakeResult(
            ami=ami,
            region=region,
            image_id=image_id,
            bake_key=key,
            baked=baked,
            seconds=time.monotonic() - started,
            blueprint=blueprint_path,
            timings=clock.timings,
            **extra,
        )

    current = blueprint.cloud.ami
    if current and not force:
        say.step(f"checking {current} in {'AWS' if cloud else 'LocalStack'} ({region})")
        image = describe_ami(ec2, current, settings)
        if image and tags_of(image).get(TAG_BAKE_KEY) == key:
            return result(current, baked=False)

    work = settings.state_dir / "bake" / blueprint.analysis
    with clock.phase("save_image"):
        archive, archive_sha256 = save_image(
            engine, blueprint.image_tag, image_id, work / "archive", say
        )
    with clock.phase("wheelhouse"):
        wheels = build_wheelhouse(wheel_cache(), say)
    ecs = "batch" in blueprint.model_fields_set  # a Batch analysis: ECS base, runner image
    runner: tuple[str, Path, str] | None = None
    if ecs:
        with clock.phase("runner_image"):
            runner = build_runner_image(engine, wheels, __version__, work / "runner", say)
    now = datetime.now(UTC)
    manifest = baked_manifest(loaded, image_id, archive_sha256, key, now)
    stage_payload(work / "payload", archive, wheels, manifest, runner[1] if runner else None)

    wanted = packer.source_ami(blueprint.cloud.source_ami, blueprint.resources.gpu, ecs)
    plan = packer.BakePlan(
        analysis=blueprint.analysis,
        region=region,
        instance_type=blueprint.cloud.instance_type,
        volume_gb=max(
            blueprint.cloud.volume_gb, source_snapshot_gb(ec2, wanted, settings) if cloud else 0
        ),
        gpu=blueprint.resources.gpu,
        image_id=image_id,
        image_tag=blueprint.image_tag,
        archive_sha256=archive_sha256,
        bake_key=key,
        version=__version__,
        source=wanted,
        ami_name=ami_name(blueprint.analysis, key, now),
        payload_dir=work / "payload",
        verify_report=work / "verify.json",
        manifest=work / "packer-manifest.json",
        ec2_endpoint=settings.endpoint_url or "",
        local_source_ami="" if cloud else local_source_ami(ec2, wanted, settings),
        subnet_id=blueprint.cloud.subnet_id or "",
        security_group_ids=tuple(blueprint.cloud.security_group_ids),
    )
    expected = {**manifest, "baked": manifest, "runner_python": RUNNER_PYTHON}
    if runner is not None:
        expected["runner_image_id"] = runner[0]
    ami, proof = _run_packer(plan, work, expected, cloud, clock, say)
    registered = describe_ami(ec2, ami, settings)
    if registered is None or tags_of(registered).get(TAG_BAKE_KEY) != key:
        raise NcaasError(
            f"packer reported {ami}, but EC2 in {region} has no such AMI tagged with this bake",
            hint=f"see the packer logs in {work}",
        )

    pruned = prune_amis(ec2, blueprint.analysis, ami, settings)
    if pruned:
        say.step(
            f"deregistered {len(pruned)} older AMI(s) and their snapshots: {', '.join(pruned)}"
        )
    say.step(f"recording {ami} in {blueprint_path}")
    write_ami(loaded.folder, ami, f"baked by ncaas-dev from {image_id} on {now:%Y-%m-%d}")
    return result(
        ami, baked=True, source_ami=plan.local_source_ami or wanted.describe(), proof=proof
    )


def _run_packer(
    plan: packer.BakePlan,
    work: Path,
    expected: Mapping[str, Any],
    cloud: bool,
    clock: _Clock,
    say: Reporter,
) -> tuple[str, dict[str, Any]]:
    """Validate, then: locally the stand-in proof and LocalStack's AMI; in the cloud the
    provisioned instance and its report. Returns the AMI and the provisioning report."""
    var_file = packer.write_variables(plan, work / "vars.pkrvars.json")
    env = packer.packer_env(_packer_aws_env(plan.region, cloud))
    packer.validate(var_file, env=env, log_path=work / "packer-validate.log")
    if cloud:
        with clock.phase("packer_ami"):
            say.step(f"baking the AMI in AWS, provisioned over SSH (packer, {packer.SOURCE_CLOUD})")
            proof = provision_and_check(
                plan, packer.SOURCE_CLOUD, var_file, env, work, expected, say
            )
    else:
        with clock.phase("standin_proof"):
            say.step("proving the provisioning in a stand-in container (packer, docker)")
            proof = provision_and_check(
                plan, packer.SOURCE_STANDIN, var_file, env, work, expected, say
            )
        with clock.phase("packer_ami"):
            say.step(f"baking the AMI in LocalStack (packer, {packer.SOURCE_LOCAL})")
            plan.manifest.unlink(missing_ok=True)
            log = packer_log(work, packer.SOURCE_LOCAL)
            packer.build(packer.SOURCE_LOCAL, var_file, env=env, log_path=log, on_line=say.line)
    return packer.ami_from_manifest(plan.manifest)[1], proof


def _packer_aws_env(region: str, cloud: bool) -> dict[str, str | None]:
    if cloud:
        return {"AWS_REGION": region}
    # LocalStack takes any key; fixed ones keep a developer's real credentials out of it.
    return {
        "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET_KEY,
        "AWS_SESSION_TOKEN": None,
        "AWS_PROFILE": None,
        "AWS_REGION": region,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
