"""Bake an analysis into an AMI: its image loaded into Docker, the same ncaas-dev as the runner.

Content-addressed: the bake key hashes the image id, the blueprint's content without
``cloud.ami``, the ncaas-dev version and the recipe (``images/ami``). An AMI whose
``ncaas:bake-key`` tag equals the key is up to date and is not baked again.

Locally Packer registers the AMI in LocalStack's EC2 (nothing can boot there), and the same
provisioning scripts run in a container standing in for the instance; the bake succeeds only
when what that stand-in reports matches what was baked. ``--cloud`` provisions a real instance
over SSH and checks the same report from it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import botocore.exceptions
import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError
from ruamel.yaml.util import load_yaml_guess_indent

from ... import __version__
from ...aws import client as aws_client
from ...blueprint import BLUEPRINT_FILE, LoadedBlueprint, load_blueprint, parse_blueprint
from ...containers import Engine
from ...errors import BlueprintError, NcaasError, UsageError
from ...settings import Settings
from ..layout import RUNNER_PYTHON, TAG_BAKE_KEY, tags_of
from . import packer
from .payload import Reporter, build_wheelhouse, save_image, stage_payload, wheel_cache

_NOT_FOUND = {"InvalidAMIID.NotFound", "InvalidAMIID.Malformed", "InvalidAMIID.Unavailable"}


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


# -- pure parts ------------------------------------------------------------------------------
def keyed_content(blueprint_text: str) -> Any:
    """The blueprint's content as the key sees it: the validated model with its defaults
    filled in (so comments, layout, order and spelled-out defaults do not count), without
    ``cloud.ami``, which the bake itself writes."""
    doc = yaml.safe_load(blueprint_text)
    blueprint = parse_blueprint(doc, BLUEPRINT_FILE)
    return blueprint.model_dump(mode="json", exclude={"cloud": {"ami"}})


def bake_key(image_id: str, blueprint_text: str, version: str, recipe: str) -> str:
    """sha256 of what the AMI is made of: image, blueprint (minus cloud.ami), runner, recipe."""
    material = {
        "image_id": image_id,
        "blueprint": keyed_content(blueprint_text),
        "ncaas_version": version,
        "recipe": recipe,
    }
    canonical = json.dumps(material, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def ami_name(analysis: str, key: str, now: datetime) -> str:
    """Unique per bake (AWS refuses a name twice); key and time say which bake it was."""
    return f"ncaas-{analysis}-{key[:12]}-{now.strftime('%Y%m%dT%H%M%SZ')}"


def baked_manifest(
    loaded: LoadedBlueprint, image_id: str, archive_sha256: str, key: str, now: datetime
) -> dict[str, Any]:
    """``/opt/ncaas/baked.json``: what this AMI holds, for provenance and for checks."""
    blueprint = loaded.blueprint
    return {
        "analysis": blueprint.analysis,
        "image_tag": blueprint.image_tag,
        "image_id": image_id,
        "image_archive_sha256": archive_sha256,
        "blueprint_hash": loaded.content_hash,
        "bake_key": key,
        "ncaas_version": __version__,
        "gpu": blueprint.resources.gpu,
        "baked_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def check_report(
    report: Mapping[str, Any], expected: Mapping[str, Any], require_docker: bool
) -> list[str]:
    """What the provisioned machine reports vs what was baked; one line per mismatch."""
    problems: list[str] = []
    if report.get("ncaas_version") != expected["ncaas_version"]:
        problems.append(
            f"runner is ncaas-dev {report.get('ncaas_version')}, "
            f"expected {expected['ncaas_version']}"
        )
    if report.get("runner_python") != expected["runner_python"]:
        problems.append(
            f"runner python is {report.get('runner_python')}, expected {expected['runner_python']}"
        )
    image = report.get("image") or {}
    if image.get("id") != expected["image_id"]:
        problems.append(f"image there is {image.get('id')}, expected {expected['image_id']}")
    if require_docker and image.get("how") != "docker":
        problems.append("the image is not loaded in Docker on the instance")
    if image.get("how") == "archive" and expected["image_tag"] not in image.get("repo_tags", []):
        problems.append(f"the archive does not tag the image {expected['image_tag']}")
    if report.get("baked") != expected["baked"]:
        problems.append("baked.json on the instance differs from what was baked")
    return problems


def _mapping_indent(text: str) -> int:
    for line in text.splitlines():
        match = re.match(r"^( +)[^ #-]", line)
        if match:
            return len(match.group(1))
    return 2


def with_ami(blueprint_text: str, ami: str, note: str) -> str:
    """``blueprint_text`` with ``cloud.ami: AMI  # NOTE``; comments, order, quotes and
    indentation of everything else survive (ruamel.yaml round trip)."""
    _, sequence_indent, offset = load_yaml_guess_indent(blueprint_text)
    rt = YAML()
    rt.preserve_quotes = True
    rt.width = 4096  # never re-wrap a user's long lines
    rt.indent(mapping=_mapping_indent(blueprint_text), sequence=sequence_indent, offset=offset)
    try:
        doc = rt.load(blueprint_text)
    except YAMLError as e:
        raise BlueprintError(f"blueprint.yaml is not valid YAML: {e}") from e
    cloud = doc.get("cloud")
    if cloud is None:
        cloud = doc["cloud"] = CommentedMap()
    cloud["ami"] = ami
    tokens = cloud.ca.items.get("ami")
    if tokens and len(tokens) > 2 and tokens[2] is not None:
        # The old comment may carry the comment lines that follow it: keep those.
        _, newline, rest = tokens[2].value.partition("\n")
        tokens[2].value = f"# {note}{newline}{rest}"
    else:
        cloud.yaml_add_eol_comment(note, "ami")
    out = io.StringIO()
    rt.dump(doc, out)
    return out.getvalue()


def write_ami(folder: Path, ami: str, note: str) -> LoadedBlueprint:
    """Record the AMI in the blueprint, then reload it: it must still be a valid blueprint."""
    path = folder / BLUEPRINT_FILE
    original = path.read_text()
    updated = with_ami(original, ami, note)
    _atomic_write(path, updated)
    try:
        return load_blueprint(folder)
    except BlueprintError:
        _atomic_write(path, original)
        raise


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.bake-tmp")
    tmp.write_text(text)
    with contextlib.suppress(OSError):
        shutil.copymode(path, tmp)
    tmp.replace(path)


# -- the EC2 side ----------------------------------------------------------------------------
def _ec2(settings: Settings, region: str) -> Any:
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
    ec2 = _ec2(settings, region)
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
    now = datetime.now(UTC)
    manifest = baked_manifest(loaded, image_id, archive_sha256, key, now)
    stage_payload(work / "payload", archive, wheels, manifest)

    wanted = packer.source_ami(blueprint.cloud.source_ami, blueprint.resources.gpu)
    plan = packer.BakePlan(
        analysis=blueprint.analysis,
        region=region,
        instance_type=blueprint.cloud.instance_type,
        volume_gb=blueprint.cloud.volume_gb,
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
    )
    expected = {**manifest, "baked": manifest, "runner_python": RUNNER_PYTHON}
    ami, proof = _run_packer(plan, work, expected, cloud, clock, say)
    registered = describe_ami(ec2, ami, settings)
    if registered is None or tags_of(registered).get(TAG_BAKE_KEY) != key:
        raise NcaasError(
            f"packer reported {ami}, but EC2 in {region} has no such AMI tagged with this bake",
            hint=f"see the packer logs in {work}",
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
            proof = _provision_and_check(
                plan, packer.SOURCE_CLOUD, var_file, env, work, expected, say
            )
    else:
        with clock.phase("standin_proof"):
            say.step("proving the provisioning in a stand-in container (packer, docker)")
            proof = _provision_and_check(
                plan, packer.SOURCE_STANDIN, var_file, env, work, expected, say
            )
        with clock.phase("packer_ami"):
            say.step(f"baking the AMI in LocalStack (packer, {packer.SOURCE_LOCAL})")
            plan.manifest.unlink(missing_ok=True)
            log = _packer_log(work, packer.SOURCE_LOCAL)
            packer.build(packer.SOURCE_LOCAL, var_file, env=env, log_path=log, on_line=say.line)
    return packer.ami_from_manifest(plan.manifest)[1], proof


def _packer_log(work: Path, source: str) -> Path:
    return work / f"packer-{source.split('.')[-1]}.log"


def _provision_and_check(
    plan: packer.BakePlan,
    source: str,
    var_file: Path,
    env: Mapping[str, str],
    work: Path,
    expected: Mapping[str, Any],
    say: Reporter,
) -> dict[str, Any]:
    """Run the provisioning on ``source`` and compare its report with what was baked; a real
    instance must have the image loaded in Docker (the stand-in has no daemon)."""
    plan.verify_report.unlink(missing_ok=True)
    plan.manifest.unlink(missing_ok=True)
    log = _packer_log(work, source)
    packer.build(source, var_file, env=env, log_path=log, on_line=say.line)
    try:
        report = json.loads(plan.verify_report.read_text())
    except (OSError, ValueError) as e:
        raise NcaasError(f"{source} left no provisioning report: {e}", hint=f"see {log}") from e
    require_docker = source != packer.SOURCE_STANDIN
    problems = check_report(report, expected, require_docker=require_docker)
    if problems:
        raise NcaasError(
            f"provisioning on {source} does not match the bake: {'; '.join(problems)}",
            hint=f"report: {plan.verify_report}; log: {log}",
        )
    return {"on": source, **report}


def _packer_aws_env(region: str, cloud: bool) -> dict[str, str | None]:
    if cloud:
        return {"AWS_REGION": region}
    # LocalStack takes any key; fixed ones keep a developer's real credentials out of it.
    return {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_SESSION_TOKEN": None,
        "AWS_PROFILE": None,
        "AWS_REGION": region,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
