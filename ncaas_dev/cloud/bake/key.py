"""What an AMI is made of and what it is called (pure): the bake key, which decides whether a
bake is needed, the AMI's name, and ``baked.json``, the manifest the AMI carries.

The bake key hashes the image id, the blueprint's content without ``cloud.ami``, the
ncaas-dev version and the recipe (``images/ami``). An AMI whose ``ncaas:bake-key`` tag equals
the key is up to date and is not baked again.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

import yaml

from ... import __version__
from ...blueprint import BLUEPRINT_FILE, LoadedBlueprint, parse_blueprint


def keyed_content(blueprint_text: str) -> Any:
    """The blueprint's content as the key sees it: the validated model with its defaults
    filled in (so comments, layout, order and spelled-out defaults do not count), without
    ``cloud.ami``, which the bake itself writes, nor where instances run (bucket, subnet,
    security groups)."""
    doc = yaml.safe_load(blueprint_text)
    blueprint = parse_blueprint(doc, BLUEPRINT_FILE)
    where = {"ami", "bucket", "subnet_id", "security_group_ids"}  # not what the AMI holds
    return blueprint.model_dump(mode="json", exclude={"cloud": where})


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
