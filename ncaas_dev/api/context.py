"""Composition roots for the API and the commands: settings -> clients -> services.

Clients are built when first used, and their modules (boto3, pydantic) imported then.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from ..blueprint import LoadedBlueprint
    from ..client import AnalysisClient
    from ..storage import Storage


@dataclass
class Context:
    settings: Settings

    @classmethod
    def create(cls, endpoint_url: str | None = None, cloud: bool = False) -> Context:
        return cls(Settings.from_env(endpoint_url=endpoint_url, cloud=cloud))

    @cached_property
    def storage(self) -> Storage:
        from ..aws import s3_client
        from ..storage import Storage

        return Storage(s3_client(self.settings), self.settings.endpoint_url)

    @cached_property
    def sqs(self) -> SQSClient:
        from ..aws import sqs_client

        return sqs_client(self.settings)

    def require_own_stack(self) -> None:
        """Refuse (exit 2) an endpoint on this machine that another user's stack serves."""
        from ..ownership import require_own_stack

        require_own_stack(self.settings.endpoint_url)

    def require_stack(self, wait: float = 0, say: Callable[[str], None] | None = None) -> None:
        from ..local.stack import require_localstack

        require_localstack(self.settings, wait, say)


@dataclass(frozen=True)
class Target:
    """An analysis named on the command line, by blueprint folder or by name."""

    analysis: str
    default_group: str | None
    loaded: LoadedBlueprint | None
    bucket: str = ""  # where it lives: cloud.bucket on real AWS, else the analysis name

    @property
    def where(self) -> str:
        return self.bucket or self.analysis


def resolve_target(ctx: Context, target: str) -> Target:
    from ..analysis import load_record
    from ..blueprint import load_blueprint

    path = Path(target)
    if path.is_dir() or path.name == "blueprint.yaml":
        loaded = load_blueprint(path)
        blueprint = loaded.blueprint
        # Local runs keep the analysis name; on AWS the analysis lives in cloud.bucket.
        bucket = blueprint.analysis if ctx.settings.local else blueprint.bucket
        return Target(blueprint.analysis, blueprint.groups[0].name, loaded, bucket)
    ctx.require_stack()
    record = load_record(ctx.storage, target) if ctx.storage.bucket_exists(target) else None
    if record is None:
        raise UsageError(
            f"{target!r} is neither a blueprint folder nor an analysis on this stack",
            hint="give a blueprint folder, or an analysis listed by `ncaas-dev status`",
        )
    return Target(record.blueprint.analysis, record.blueprint.groups[0].name, None, target)


@dataclass(frozen=True)
class Opened:
    """What the commands acting on one analysis's jobs start from."""

    ctx: Context
    client: AnalysisClient
    group: str


def open_analysis(
    analysis: str, endpoint_url: str | None, group: str | None, cloud: bool = False
) -> Opened:
    """Settings, the analysis's client and the group (the blueprint's first if none given)."""
    ctx = Context.create(endpoint_url, cloud)
    target = resolve_target(ctx, analysis)
    return Opened(ctx, analysis_client(ctx, target), group or target.default_group or "")


def analysis_client(ctx: Context, target: Target) -> AnalysisClient:
    from ..client import AnalysisClient

    ctx.require_stack()
    client = AnalysisClient(ctx.storage, target.where)
    client.require_bucket()
    return client
