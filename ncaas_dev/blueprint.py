"""The blueprint: the single record of how an analysis is built, what it gets and who uses it.

Loading is pure (file in, validated model out); a bad blueprint raises ``BlueprintError``
naming the file, the field and the problem.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import BlueprintError

BLUEPRINT_FILE = "blueprint.yaml"
GROUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
# EC2 families with NVIDIA GPUs on x86_64, which the baked AMI (driver + container toolkit)
# serves. g4ad is AMD and g5g is ARM: neither runs the NVIDIA toolkit on an x86 AMI.
NVIDIA_GPU_TYPE = re.compile(r"^(p[2-6][a-z]*|g[3-6](?!ad|g)[a-z]*|gr6)\.[a-z0-9]+$")
DEFAULT_GPU_INSTANCE_TYPE = "g4dn.xlarge"
# NVIDIA families whose GPUs (Kepler, Maxwell, Volta) current Deep Learning AMIs' drivers no
# longer support: the GPU base AMI would boot without a working GPU.
RETIRED_GPU_TYPE = re.compile(r"^(p2|p3|p3dn|g3|g3s)\.[a-z0-9]+$")
SUPPORTED_GPU_FAMILIES = "g4dn, g5, g6, g6e, gr6, p4d, p4de, p5"


def parse_memory(value: object) -> int:
    """'4g', '512m', '1.5GiB' or a byte count -> bytes."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 4g or 512m")
    if isinstance(value, int):
        return value
    match = _MEMORY.match(str(value).strip())
    if not match:
        raise ValueError(f"{value!r} is not a size such as 4g or 512m")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImageSpec(_Strict):
    dockerfile: str = "Dockerfile"
    context: str = "."
    build_args: dict[str, str] = Field(default_factory=dict)

    @field_validator("dockerfile", "context")
    @classmethod
    def _relative(cls, value: str) -> str:
        if Path(value).is_absolute() or ".." in Path(value).parts:
            raise ValueError("must be a path inside the blueprint folder")
        return value


class RunSpec(_Strict):
    command: list[str] | None = None
    env: dict[str, str] = Field(default_factory=dict)
    timeout: int = Field(default=3600, gt=0, le=7 * 24 * 3600)
    network: bool = False


def _parse_disk(value: object) -> int | None:
    return None if value is None else parse_memory(value)


class Resources(_Strict):
    cpus: float = Field(default=2, gt=0, le=512)
    memory: Annotated[int, BeforeValidator(parse_memory)] = Field(default=4 * 1024**3)
    gpu: bool = False
    # What one dataset may write, outputs and scratch (diskguard.py); None: 20g on this
    # machine, the instance's volume (cloud.volume_gb) on EC2.
    disk: Annotated[int | None, BeforeValidator(_parse_disk)] = None

    @field_validator("disk")
    @classmethod
    def _some_disk(cls, value: int | None) -> int | None:
        if value is not None and value < 1024**2:
            raise ValueError("must be at least 1m (a dataset's outputs need room)")
        return value

    @field_validator("memory")
    @classmethod
    def _enough_memory(cls, value: int) -> int:
        if value < 6 * 1024**2:
            raise ValueError("must be at least 6m (Docker's minimum)")
        return value


def _bucket_name(value: str) -> str:
    if not BUCKET_NAME.fullmatch(value) or "--" in value:
        raise ValueError(
            f"{value!r} is not a valid bucket name: 3-63 characters, lowercase letters, "
            "digits and single hyphens, starting and ending with a letter or digit"
        )
    return value


class CloudSpec(_Strict):
    region: str = "us-east-1"
    # S3 bucket names are global: on AWS another account may hold the analysis's name.
    bucket: str | None = None
    instance_type: str = "m5.xlarge"
    volume_gb: int = Field(default=100, gt=0, le=16384)
    source_ami: str | None = None
    ami: str | None = None
    # Where bake and launch start instances: unset, the region's default VPC (EC2 picks one of
    # its subnets). A private subnet needs an S3 gateway endpoint (docs/cloud-path.md).
    subnet_id: str | None = Field(default=None, pattern=r"^subnet-[0-9a-f]{8,17}$")
    security_group_ids: list[str] = Field(default_factory=list)
    # Types a submission's `instance_type` may choose (NeuroCAAS lets a submission pick one).
    allowed_instance_types: list[str] = Field(default_factory=list)

    @field_validator("security_group_ids")
    @classmethod
    def _groups(cls, value: list[str]) -> list[str]:
        bad = [g for g in value if not re.fullmatch(r"sg-[0-9a-f]{8,17}", g)]
        if bad:
            raise ValueError(f"{', '.join(bad)}: not security group ids (sg-...)")
        return value

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str | None) -> str | None:
        return None if value is None else _bucket_name(value)


class SlurmSpec(_Strict):
    """How the SLURM launcher submits each dataset (docs/slurm.md)."""

    partition: str | None = None  # None: the cluster's default partition
    account: str | None = None
    qos: str | None = None
    container: Literal["docker", "oci"] = "docker"  # how the analysis runs on the node
    extra_args: list[str] = Field(default_factory=list)  # passed to sbatch as given
    price_per_cpu_hour: float = Field(default=0, ge=0)  # USD per core-hour, for the budget


class BatchSpec(_Strict):
    """How the AWS Batch launcher runs each dataset (docs/batch.md)."""

    spot: bool = True  # SPOT with SPOT_PRICE_CAPACITY_OPTIMIZED; false: on-demand EC2
    max_vcpus: int = Field(default=256, gt=0, le=100000)  # the compute environment's ceiling
    instance_types: list[str] = Field(default_factory=list)  # empty: cloud.instance_type
    # Extra attempts after an interruption (host reclaimed or lost), never after the
    # analysis's own failure.
    retries: int = Field(default=2, ge=0, le=9)
    job_queue: str | None = Field(default=None, min_length=1, max_length=128)

    @field_validator("instance_types")
    @classmethod
    def _types(cls, value: list[str]) -> list[str]:
        # Batch also takes a family (m5) or "optimal"; anything else is a typo.
        bad = [t for t in value if not re.fullmatch(r"optimal|[a-z][a-z0-9-]*(\.[a-z0-9]+)?", t)]
        if bad:
            raise ValueError(
                f"{', '.join(map(repr, bad))}: not instance types (m5.xlarge, a family m5, "
                "or optimal)"
            )
        return value

    def chosen_types(self, cloud: CloudSpec) -> list[str]:
        """What the compute environment may start: these, or the blueprint's instance type."""
        return list(self.instance_types) or [cloud.instance_type]


class Limits(_Strict):
    max_concurrent_jobs: int = Field(default=4, gt=0, le=1000)
    max_cost_usd: float = Field(default=300, ge=0)
    # A folder dataset (a `dataname` ending in /) with more objects than this is rejected.
    max_files_per_dataset: int = Field(default=10000, gt=0)


class Group(_Strict):
    name: str
    users: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not GROUP_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not a group name: use letters, digits, - and _")
        return value


class Blueprint(_Strict):
    analysis: str
    description: str = ""
    # neurocaas: job folders and files in NeuroCAAS's own layout (docs/neurocaas.md).
    compat: Literal["none", "neurocaas"] = "none"
    image: ImageSpec = Field(default_factory=ImageSpec)
    run: RunSpec = Field(default_factory=RunSpec)
    resources: Resources = Field(default_factory=Resources)
    cloud: CloudSpec = Field(default_factory=CloudSpec)
    limits: Limits = Field(default_factory=Limits)
    slurm: SlurmSpec = Field(default_factory=SlurmSpec)
    batch: BatchSpec = Field(default_factory=BatchSpec)
    groups: list[Group] = Field(min_length=1)

    @field_validator("analysis")
    @classmethod
    def _bucket_safe(cls, value: str) -> str:
        return _bucket_name(value)

    @model_validator(mode="after")
    def _gpu_parity(self) -> Blueprint:
        """A GPU locally means a GPU instance in the cloud; a default picks one."""
        if self.resources.gpu and RETIRED_GPU_TYPE.match(self.cloud.instance_type):
            raise ValueError(
                f"cloud.instance_type {self.cloud.instance_type!r}: current Deep Learning AMIs "
                f"no longer support p2, p3 or g3 GPUs; use one of {SUPPORTED_GPU_FAMILIES} "
                "(e.g. g4dn.xlarge or g5.xlarge)"
            )
        if not self.resources.gpu or NVIDIA_GPU_TYPE.match(self.cloud.instance_type):
            return self
        if "instance_type" not in self.cloud.model_fields_set:
            cloud = self.cloud.model_copy(update={"instance_type": DEFAULT_GPU_INSTANCE_TYPE})
            object.__setattr__(self, "cloud", cloud)  # frozen model; still inside validation
            return self
        raise ValueError(
            f"cloud.instance_type {self.cloud.instance_type!r} has no NVIDIA GPU but "
            "resources.gpu is true: pick a GPU type such as g4dn.xlarge, g5.xlarge or "
            "g6.xlarge, or set resources.gpu to false"
        )

    @model_validator(mode="after")
    def _allowed_types(self) -> Blueprint:
        """A type a submission may choose is held to cloud.instance_type's rules (GPU parity,
        no retired GPU family) and must have a price: the budget check needs one, and a
        submission choosing an unpriced type would only be rejected later."""
        from .pricing import PRICE_TABLE, price_table

        prices = price_table()
        for kind in self.cloud.allowed_instance_types:
            field = f"cloud.allowed_instance_types: {kind!r}"
            if self.resources.gpu and RETIRED_GPU_TYPE.match(kind):
                raise ValueError(
                    f"{field}: current Deep Learning AMIs no longer support p2, p3 or g3 GPUs; "
                    f"use one of {SUPPORTED_GPU_FAMILIES}"
                )
            if self.resources.gpu and not NVIDIA_GPU_TYPE.match(kind):
                raise ValueError(
                    f"{field} has no NVIDIA GPU but resources.gpu is true: list GPU types only "
                    "(e.g. g4dn.xlarge, g5.xlarge)"
                )
            if kind not in prices:
                raise ValueError(
                    f"{field} has no price in {PRICE_TABLE.name}, so the budget cannot be "
                    "checked: list a priced type, or add its price "
                    "(`python -m ncaas_dev.pricing --refresh --type TYPE`)"
                )
        return self

    @field_validator("groups")
    @classmethod
    def _unique_groups(cls, groups: list[Group]) -> list[Group]:
        names = [g.name for g in groups]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate group name(s) {', '.join(duplicates)}")
        return groups

    def group(self, name: str) -> Group | None:
        return next((g for g in self.groups if g.name == name), None)

    @property
    def bucket(self) -> str:
        """The bucket on the cloud path (deploy, Lambda, EC2): ``cloud.bucket``, else the
        analysis name. Local runs (`run`, `up`) always use the analysis name."""
        return self.cloud.bucket or self.analysis

    @property
    def image_tag(self) -> str:
        return f"ncaas/{self.analysis}:latest"


class LoadedBlueprint(BaseModel):
    """A blueprint together with where it came from and a hash of its content."""

    model_config = ConfigDict(frozen=True)

    blueprint: Blueprint
    folder: Path
    content_hash: str


def _field_path(location: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in location:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts) or "(top level)"


def parse_blueprint(data: Any, source: str) -> Blueprint:
    """Validate already-parsed YAML; errors name ``source``, the field and the problem."""
    if not isinstance(data, dict):
        raise BlueprintError(f"{source}: expected a mapping of fields, got {type(data).__name__}")
    try:
        return Blueprint.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        field = _field_path(tuple(first["loc"]))
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown field (check its spelling against the docs)"
        elif first["type"] == "missing":
            message = "required field is missing"
        more = f" (and {len(e.errors()) - 1} more problem(s))" if len(e.errors()) > 1 else ""
        where = f"field '{field}': " if first["loc"] else ""  # model-level: message names it
        raise BlueprintError(f"{source}: {where}{message}{more}") from e


def load_blueprint(folder: Path | str) -> LoadedBlueprint:
    """Load ``folder/blueprint.yaml``; raise ``BlueprintError`` (exit 2) when anything is wrong."""
    folder = Path(folder)
    path = folder / BLUEPRINT_FILE if folder.is_dir() else folder
    if not path.is_file():
        raise BlueprintError(
            f"{path}: no blueprint here", hint="give a folder holding blueprint.yaml"
        )
    raw = path.read_bytes()
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise BlueprintError(f"{path}:{where} is not valid YAML: {problem}") from e
    blueprint = parse_blueprint(data, str(path))
    folder = path.parent
    if not (folder / blueprint.image.dockerfile).is_file():
        raise BlueprintError(
            f"{path}: field 'image.dockerfile': {blueprint.image.dockerfile} does not exist"
        )
    return LoadedBlueprint(
        blueprint=blueprint, folder=folder.resolve(), content_hash=hashlib.sha256(raw).hexdigest()
    )
