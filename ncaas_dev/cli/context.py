"""Composition roots for the commands: settings -> clients -> services."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from ..analysis import load_record
from ..aws import s3_client, sqs_client
from ..blueprint import LoadedBlueprint, load_blueprint
from ..client import AnalysisClient
from ..errors import UsageError
from ..settings import Settings
from ..stack import require_localstack
from ..storage import Storage

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


@dataclass
class Context:
    settings: Settings

    @classmethod
    def create(cls, endpoint_url: str | None = None, cloud: bool = False) -> Context:
        return cls(Settings.from_env(endpoint_url=endpoint_url, cloud=cloud))

    @cached_property
    def storage(self) -> Storage:
        return Storage(s3_client(self.settings), self.settings.endpoint_url)

    @cached_property
    def sqs(self) -> SQSClient:
        return sqs_client(self.settings)

    def require_stack(self) -> None:
        require_localstack(self.settings)


@dataclass(frozen=True)
class Target:
    """An analysis named on the command line, by blueprint folder or by name."""

    analysis: str
    default_group: str | None
    loaded: LoadedBlueprint | None


def resolve_target(ctx: Context, target: str) -> Target:
    path = Path(target)
    if path.is_dir() or path.name == "blueprint.yaml":
        loaded = load_blueprint(path)
        return Target(loaded.blueprint.analysis, loaded.blueprint.groups[0].name, loaded)
    ctx.require_stack()
    record = load_record(ctx.storage, target) if ctx.storage.bucket_exists(target) else None
    if record is None:
        raise UsageError(
            f"{target!r} is neither a blueprint folder nor an analysis on this stack",
            hint="give a blueprint folder, or an analysis listed by `ncaas-dev status`",
        )
    return Target(target, record.blueprint.groups[0].name, None)


def analysis_client(ctx: Context, target: Target) -> AnalysisClient:
    ctx.require_stack()
    client = AnalysisClient(ctx.storage, target.analysis)
    client.require_bucket()
    return client
