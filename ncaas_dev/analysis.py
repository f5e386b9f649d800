"""What the dispatcher knows about an analysis, stored in its own bucket (``.ncaas/``).

Provisioning writes it; the dispatcher (local loop or Lambda) reads it per event, so it keeps
no state of its own and serves every analysis provisioned on the stack.
"""

from __future__ import annotations

from pydantic import BaseModel

from . import __version__
from .blueprint import Blueprint, LoadedBlueprint
from .layout import BLUEPRINT_RECORD
from .storage import NotFound, Storage


class AnalysisRecord(BaseModel):
    blueprint: Blueprint
    content_hash: str
    image: str
    image_id: str | None = None
    ncaas_version: str = __version__

    @classmethod
    def of(cls, loaded: LoadedBlueprint, image_id: str | None) -> AnalysisRecord:
        return cls(
            blueprint=loaded.blueprint,
            content_hash=loaded.content_hash,
            image=loaded.blueprint.image_tag,
            image_id=image_id,
        )


def save_record(storage: Storage, record: AnalysisRecord, bucket: str | None = None) -> None:
    """Into ``bucket``: the analysis name locally, ``cloud.bucket`` on the cloud path."""
    bucket = bucket or record.blueprint.analysis
    storage.put_json(bucket, BLUEPRINT_RECORD, record.model_dump(mode="json"))


def load_record(storage: Storage, bucket: str) -> AnalysisRecord | None:
    try:
        doc, _ = storage.get_json(bucket, BLUEPRINT_RECORD)
    except NotFound:
        return None
    return AnalysisRecord.model_validate(doc)


def provisioned_records(storage: Storage) -> dict[str, AnalysisRecord]:
    """The analyses on the stack: every bucket holding an analysis record, with its record.
    (`ncaas-dev status` asks the same without boto3: ``stack_status.probe_analyses``.)"""
    from .bucketconfig import list_buckets  # (bucketconfig is beside storage, below this)

    found = {b: load_record(storage, b) for b in list_buckets(storage)}
    return {b: record for b, record in found.items() if record is not None}


def provisioned_analyses(storage: Storage) -> list[str]:
    """Buckets on the stack that hold an analysis record."""
    return list(provisioned_records(storage))
