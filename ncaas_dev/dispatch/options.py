"""What a submission may choose beyond its data, checked at admission (NeuroCAAS's options).

- a folder ``dataname`` (ending in ``/``): one dataset, every object under it; not empty, and
  no more than ``limits.max_files_per_dataset`` objects;
- ``instance_type``: only one of the blueprint's ``cloud.allowed_instance_types``;
- ``__duration__`` in the config (minutes): shortens the per-dataset timeout, never past
  ``run.timeout``.

Each check answers with a value, or a one-line reason for the rejection.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

import yaml

from ..blueprint import Blueprint
from ..storage import Storage
from ..submission import Submission

# A config bigger than this is data, not settings: nobody writes __duration__ into it.
MAX_CONFIG_BYTES = 1024**2
DURATION = "__duration__"


@dataclass(frozen=True)
class Checked:
    value: str | int | None = None
    problem: str | None = None


def instance_type(blueprint: Blueprint, submission: Submission) -> Checked:
    """The instance type this submission runs on (its own choice only if the blueprint
    allows it)."""
    chosen = submission.instance_type
    if chosen is None or chosen == blueprint.cloud.instance_type:
        return Checked(blueprint.cloud.instance_type)
    allowed = blueprint.cloud.allowed_instance_types
    if chosen in allowed:
        return Checked(chosen)
    choices = ", ".join([blueprint.cloud.instance_type, *allowed])
    return Checked(
        problem=f"'instance_type' {chosen!r} is not allowed for this analysis; allowed: "
        f"{choices} (the developer lists more in cloud.allowed_instance_types)"
    )


def folder(storage: Storage, bucket: str, key: str, limit: int) -> Checked:
    """A folder dataset's fingerprint (a digest of its objects' keys and ETags), or why not."""
    objects = [o for o in storage.list_up_to(bucket, key, limit) if not o.key.endswith("/")]
    if not objects:
        return Checked(
            problem=f"folder {key} is empty (no objects under it); upload its files to "
            f"s3://{bucket}/{key} first, then submit again"
        )
    if len(objects) > limit:
        return Checked(
            problem=f"folder {key} holds more than {limit} objects "
            "(limits.max_files_per_dataset); split it into several datasets, or ask the "
            "analysis's developer to raise the limit"
        )
    digest = hashlib.sha256()
    for o in sorted(objects, key=lambda o: o.key):
        digest.update(f"{o.key}\0{o.etag}\n".encode("utf-8", "surrogatepass"))
    return Checked(f"folder:{len(objects)}:{digest.hexdigest()}")


def _config_doc(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except ValueError:
        pass
    try:
        return yaml.safe_load(raw)
    except (yaml.YAMLError, ValueError, RecursionError):
        return None  # not settings an analysis reads as YAML: nothing to look for


def duration(raw: bytes, key: str, run_timeout: int) -> Checked:
    """The timeout (seconds) a config's ``__duration__`` asks for, capped at ``run.timeout``;
    no value when the config says nothing of it."""
    doc = _config_doc(raw)
    if not isinstance(doc, dict) or DURATION not in doc:
        return Checked()
    minutes = doc[DURATION]
    if (
        isinstance(minutes, bool)
        or not isinstance(minutes, int | float)
        or not math.isfinite(minutes)
        or minutes <= 0
    ):
        return Checked(
            problem=f"config {key}: {DURATION} is {minutes!r}, not a positive number of "
            f"minutes; give e.g. {DURATION}: 30, or leave it out to use the analysis's "
            f"timeout ({run_timeout} s)"
        )
    return Checked(min(run_timeout, max(1, math.ceil(minutes * 60))))
