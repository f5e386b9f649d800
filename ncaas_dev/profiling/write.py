"""Writing a profile's recommendation into ``blueprint.yaml``: ``resources.cpus``,
``resources.memory`` and ``cloud.instance_type``, keeping the user's comments, order, quotes and
indentation (the ruamel.yaml round trip bake already uses for ``cloud.ami``), and never leaving
an invalid blueprint behind."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap

from ..blueprint import BLUEPRINT_FILE, LoadedBlueprint, load_blueprint
from ..cloud.bake.record import _atomic_write, round_trip
from ..errors import BlueprintError


def with_fields(text: str, fields: dict[tuple[str, str], Any]) -> str:
    """``text`` with each ``(section, key)`` set to its value; everything else kept."""
    rt, doc = round_trip(text)
    for (section, key), value in fields.items():
        mapping = doc.get(section)
        if mapping is None:
            mapping = doc[section] = CommentedMap()
        mapping[key] = value
    out = io.StringIO()
    rt.dump(doc, out)
    return out.getvalue()


def write_resources(folder: Path, cpus: int, memory: str, instance_type: str) -> LoadedBlueprint:
    """Record the recommendation, then reload: it must still be a valid blueprint (else the
    original is put back and the error raised)."""
    path = folder / BLUEPRINT_FILE
    original = path.read_text()
    fields = {
        ("resources", "cpus"): cpus,
        ("resources", "memory"): memory,
        ("cloud", "instance_type"): instance_type,
    }
    _atomic_write(path, with_fields(original, fields))
    try:
        return load_blueprint(folder)
    except BlueprintError:
        _atomic_write(path, original)
        raise
