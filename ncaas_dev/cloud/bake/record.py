"""Writing the baked AMI back into ``blueprint.yaml`` as ``cloud.ami``, keeping the user's
comments, order, quotes and indentation, and never leaving an invalid blueprint behind."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError
from ruamel.yaml.util import load_yaml_guess_indent

from ...blueprint import BLUEPRINT_FILE, LoadedBlueprint, load_blueprint
from ...errors import BlueprintError


def _mapping_indent(text: str) -> int:
    for line in text.splitlines():
        match = re.match(r"^( +)[^ #-]", line)
        if match:
            return len(match.group(1))
    return 2


def round_trip(blueprint_text: str) -> tuple[YAML, Any]:
    """A ruamel.yaml dumper that writes ``blueprint_text`` back as it was (comments, order,
    quotes, indentation), and the document it loaded."""
    _, sequence_indent, offset = load_yaml_guess_indent(blueprint_text)
    rt = YAML()
    rt.preserve_quotes = True
    rt.width = 4096  # never re-wrap a user's long lines
    rt.indent(mapping=_mapping_indent(blueprint_text), sequence=sequence_indent, offset=offset)
    try:
        return rt, rt.load(blueprint_text)
    except YAMLError as e:
        raise BlueprintError(f"blueprint.yaml is not valid YAML: {e}") from e


def with_ami(blueprint_text: str, ami: str, note: str) -> str:
    """``blueprint_text`` with ``cloud.ami: AMI  # NOTE``; comments, order, quotes and
    indentation of everything else survive (ruamel.yaml round trip)."""
    rt, doc = round_trip(blueprint_text)
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
