"""Packer: the AMI recipe in ``images/ami/``, its variables, and running the binary.

The template is static HCL2; everything that comes from the blueprint goes into one variables
file (``vars.auto.pkrvars.json``), rendered here by pure functions. One template has three
sources and ``bake`` picks one with ``-only``: ``amazon-ebs.local`` (LocalStack's EC2, nothing
runs on the instance), ``docker.standin`` (a container runs the very same provisioning) and
``amazon-ebs.cloud`` (real AWS, provisioned over SSH).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import NcaasError
from ...settings import PROJECT_ROOT
from ..layout import (
    BAKE_MANIFEST,
    NCAAS_HOME,
    RUNNER_PYTHON,
    TAG_ANALYSIS,
    TAG_BAKE_KEY,
    TAG_IMAGE_ID,
    TAG_VERSION,
)

RECIPE_DIR = PROJECT_ROOT / "images" / "ami"
STANDIN_IMAGE = "ncaas/base:bookworm"
PAYLOAD_ON_INSTANCE = "/tmp/ncaas-payload"  # where the file provisioner puts the payload
SOURCE_LOCAL = "amazon-ebs.local"
SOURCE_CLOUD = "amazon-ebs.cloud"
SOURCE_STANDIN = "docker.standin"
INSTALL_HINT = "install it with `apt-get install packer` (or `make setup`)"

CANONICAL = "099720109477"  # Canonical's account: the official Ubuntu AMIs
UBUNTU_LTS = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"
# AWS's GPU base: Ubuntu 24.04 with the NVIDIA driver, Docker and the container toolkit.
GPU_BASE = "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 24.04) *"
# A Batch host needs the ECS agent: AWS's ECS-optimized Amazon Linux 2023 (Docker included; the
# GPU one with the NVIDIA driver and container toolkit too). It runs EC2-per-dataset as well.
ECS_BASE = "al2023-ami-ecs-hvm-*-x86_64"
ECS_GPU_BASE = "al2023-ami-ecs-gpu-hvm-*-x86_64"
AMI_ID = re.compile(r"^ami-[0-9a-f]{8,17}$")
# `OWNER:NAME-PATTERN` in cloud.source_ami: an account id or one of AWS's owner aliases.
OWNER_PREFIX = re.compile(r"^(\d{12}|self|amazon|aws-marketplace):(.+)$")
DEFAULT_OWNERS = ("self", "amazon", CANONICAL)
_X86_HVM = {"architecture": "x86_64", "virtualization-type": "hvm", "root-device-type": "ebs"}


class PackerMissing(NcaasError):
    """No ``packer`` on PATH."""


class PackerFailed(NcaasError):
    """``packer`` exited non-zero; the hint holds the tail of its log."""


@dataclass(frozen=True)
class SourceAmi:
    """The base AMI: one id, or the newest image matching filters from the given owners."""

    image_id: str = ""
    filters: dict[str, str] = field(default_factory=dict)
    owners: tuple[str, ...] = ()

    @property
    def ssh_username(self) -> str:
        """Who Packer logs in as: Amazon Linux's ``ec2-user``, else Ubuntu's (an AMI given by
        id is taken for an Ubuntu one)."""
        amazon_linux = self.filters.get("name", "").startswith(("al2023-", "amzn"))
        return "ec2-user" if amazon_linux else "ubuntu"

    def describe(self) -> str:
        if self.image_id:
            return self.image_id
        return f"newest {self.filters.get('name', '?')} owned by {', '.join(self.owners)}"


def source_ami(spec: str | None, gpu: bool, ecs: bool = False) -> SourceAmi:
    """``cloud.source_ami`` -> what the cloud build starts from.

    Accepted: an AMI id; ``OWNER:NAME-PATTERN``; a bare name pattern (owners: self, Amazon,
    Canonical). Default: Ubuntu 24.04 LTS, or AWS's GPU base when the analysis needs a GPU;
    with ``ecs`` (the blueprint has a ``batch:`` section), the ECS-optimized Amazon Linux 2023.
    """
    if spec is None or not spec.strip():
        if ecs:
            name = ECS_GPU_BASE if gpu else ECS_BASE
            return SourceAmi(filters={"name": name, **_X86_HVM}, owners=("amazon",))
        if gpu:
            return SourceAmi(filters={"name": GPU_BASE, **_X86_HVM}, owners=("amazon",))
        return SourceAmi(filters={"name": UBUNTU_LTS, **_X86_HVM}, owners=(CANONICAL,))
    spec = spec.strip()
    if AMI_ID.match(spec):
        return SourceAmi(image_id=spec)
    owned = OWNER_PREFIX.match(spec)
    if owned:
        return SourceAmi(filters={"name": owned.group(2), **_X86_HVM}, owners=(owned.group(1),))
    return SourceAmi(filters={"name": spec, **_X86_HVM}, owners=DEFAULT_OWNERS)


@dataclass(frozen=True)
class BakePlan:
    """Everything the template needs, taken from the blueprint and the bake's inputs."""

    analysis: str
    region: str
    instance_type: str
    volume_gb: int
    gpu: bool
    image_id: str
    image_tag: str
    archive_sha256: str
    bake_key: str
    version: str
    source: SourceAmi
    ami_name: str
    payload_dir: Path
    verify_report: Path  # what the instance (or stand-in) reports after provisioning
    manifest: Path  # Packer's manifest post-processor output
    ec2_endpoint: str = ""  # LocalStack only
    local_source_ami: str = ""  # LocalStack only: any id it knows (nothing boots from it)
    subnet_id: str = ""  # cloud only: unset, the default VPC
    security_group_ids: tuple[str, ...] = ()  # cloud only: unset, Packer makes a temporary one


def ami_tags(plan: BakePlan) -> dict[str, str]:
    """The tags the EC2 launcher and the next bake read back."""
    return {
        "Name": plan.ami_name,
        TAG_ANALYSIS: plan.analysis,
        TAG_IMAGE_ID: plan.image_id,
        TAG_BAKE_KEY: plan.bake_key,
        TAG_VERSION: plan.version,
    }


def provision_env(plan: BakePlan) -> list[str]:
    """Environment of the provisioning scripts: paths from ``cloud.layout``, what to check."""
    return [
        f"NCAAS_PAYLOAD={PAYLOAD_ON_INSTANCE}",
        f"NCAAS_HOME={NCAAS_HOME}",
        f"NCAAS_VENV={Path(RUNNER_PYTHON).parent.parent}",
        f"NCAAS_BAKE_MANIFEST={BAKE_MANIFEST}",
        f"NCAAS_VERSION={plan.version}",
        f"NCAAS_IMAGE_ID={plan.image_id}",
        f"NCAAS_IMAGE_TAG={plan.image_tag}",
        f"NCAAS_ARCHIVE_SHA256={plan.archive_sha256}",
        f"NCAAS_GPU={'true' if plan.gpu else 'false'}",
    ]


def packer_variables(plan: BakePlan) -> dict[str, Any]:
    """The template's variables (``images/ami/ncaas.pkr.hcl``) for ``plan``."""
    # An id goes to source_ami with an empty filter: Packer then describes just that image.
    return {
        "analysis": plan.analysis,
        "region": plan.region,
        "instance_type": plan.instance_type,
        "volume_gb": plan.volume_gb,
        "ec2_endpoint": plan.ec2_endpoint,
        **({"local_source_ami": plan.local_source_ami} if plan.local_source_ami else {}),
        "source_ami": plan.source.image_id,
        "source_ami_filters": {} if plan.source.image_id else dict(plan.source.filters),
        "source_ami_owners": [] if plan.source.image_id else list(plan.source.owners),
        "ssh_username": plan.source.ssh_username,
        "subnet_id": plan.subnet_id,
        "security_group_ids": list(plan.security_group_ids),
        "standin_image": STANDIN_IMAGE,
        "ami_name": plan.ami_name,
        "tags": ami_tags(plan),
        "payload_dir": str(plan.payload_dir),
        "verify_report": str(plan.verify_report),
        "manifest": str(plan.manifest),
        "provision_env": provision_env(plan),
    }


def recipe_hash(recipe_dir: Path = RECIPE_DIR) -> str:
    """sha256 over the template and scripts: a changed recipe is a different AMI."""
    digest = hashlib.sha256()
    for path in sorted(p for p in recipe_dir.rglob("*") if p.is_file()):
        digest.update(path.relative_to(recipe_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def write_variables(plan: BakePlan, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(packer_variables(plan), indent=2) + "\n")
    return path


def ami_from_manifest(path: Path) -> tuple[str, str]:
    """(region, AMI id) of the last amazon-ebs build in Packer's ``manifest`` output."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise PackerFailed(f"packer left no readable manifest at {path}: {e}") from e
    run = doc.get("last_run_uuid")
    for build in reversed(doc.get("builds", [])):
        if build.get("builder_type") == "amazon-ebs" and build.get("packer_run_uuid") == run:
            region, _, ami = str(build.get("artifact_id", "")).partition(":")
            if AMI_ID.match(ami.split(",")[0]):
                return region, ami.split(",")[0]
    raise PackerFailed(f"packer's manifest {path} names no AMI from its last run")


# -- the binary ------------------------------------------------------------------------------
def packer_binary() -> str:
    found = shutil.which("packer")
    if found is None:
        # One line on purpose: it is the whole story.
        raise PackerMissing(f"packer is not installed: {INSTALL_HINT}")
    return found


def packer_env(aws: Mapping[str, str | None]) -> dict[str, str]:
    """No phoning home (checkpoint), no colour codes in the log we show; ``aws`` sets (or,
    with None, removes) AWS variables."""
    env = {**os.environ, "CHECKPOINT_DISABLE": "1", "PACKER_NO_COLOR": "1"}
    for name, value in aws.items():
        env.pop(name, None)
        if value is not None:
            env[name] = value
    return env


def run_packer(
    args: list[str],
    *,
    env: Mapping[str, str],
    log_path: Path,
    on_line: Callable[[str], None] | None = None,
    what: str = "packer",
) -> None:
    """Run ``packer ARGS``, streaming lines to ``on_line`` and the log; fail with its tail."""
    command = [packer_binary(), *args]
    tail: deque[str] = deque(maxlen=15)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        log.write(" ".join(command) + "\n")
        with subprocess.Popen(
            command,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        ) as process:
            assert process.stdout is not None
            for raw in process.stdout:
                log.write(raw)
                line = raw.rstrip()
                if line:
                    tail.append(line)
                    if on_line:
                        on_line(line)
            code = process.wait()
    if code != 0:
        raise PackerFailed(
            f"{what} failed (packer exit {code}); full log: {log_path}",
            hint="\n".join(tail) or None,
        )


def validate(var_file: Path, *, env: Mapping[str, str], log_path: Path) -> None:
    """``packer validate`` the recipe with these variables."""
    run_packer(
        ["validate", f"-var-file={var_file}", str(RECIPE_DIR)],
        env=env,
        log_path=log_path,
        what="packer validate",
    )


def fmt_check(*, log_path: Path, recipe_dir: Path = RECIPE_DIR) -> None:
    """``packer fmt -check``: the recipe is in Packer's canonical format."""
    run_packer(
        ["fmt", "-check", "-diff", str(recipe_dir)],
        env=packer_env({}),
        log_path=log_path,
        what="packer fmt -check",
    )


def build(
    source: str,
    var_file: Path,
    *,
    env: Mapping[str, str],
    log_path: Path,
    on_line: Callable[[str], None] | None = None,
) -> None:
    run_packer(
        [
            *("build", "-color=false", "-on-error=cleanup", f"-only={source}"),
            *(f"-var-file={var_file}", str(RECIPE_DIR)),
        ],
        env=env,
        log_path=log_path,
        on_line=on_line,
        what=f"packer build ({source})",
    )
