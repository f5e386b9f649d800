"""A blueprint: load it, build its image."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from .progress import OnProgress, emit

if TYPE_CHECKING:
    from ..blueprint import LoadedBlueprint

#: A loaded blueprint, or the folder (or blueprint.yaml) to load it from.
BlueprintLike: TypeAlias = "LoadedBlueprint | str | os.PathLike[str]"


def load_blueprint(folder: str | os.PathLike[str]) -> LoadedBlueprint:
    """Load ``folder/blueprint.yaml``. Raises ``BlueprintError`` naming the file, the field and
    the problem. The result has ``.blueprint`` (the fields), ``.folder`` and ``.content_hash``."""
    from ..blueprint import load_blueprint as load

    return load(Path(folder))


def loaded(bp: BlueprintLike) -> LoadedBlueprint:
    from ..blueprint import LoadedBlueprint

    return bp if isinstance(bp, LoadedBlueprint) else load_blueprint(bp)


def build(bp: BlueprintLike, *, on_progress: OnProgress | None = None) -> str:
    """Build the analysis image (Docker's layer cache makes a rebuild cheap); return its id.
    Raises ``BuildFailed`` with the failing step's output."""
    from ..containers import Engine, connect

    item = loaded(bp)
    engine = Engine(connect())
    emit(on_progress, "step", f"building {item.blueprint.image_tag}")
    return engine.build(item, on_line=lambda line: emit(on_progress, "line", line))


def cached_build(bp: BlueprintLike, state_dir: Path, on_progress: OnProgress | None = None) -> str:
    """The image id, built only when the build context changed since the last build."""
    from ..buildcache import cached_build as cached
    from ..containers import Engine, connect

    item = loaded(bp)
    engine = Engine(connect())

    def build_it(target: LoadedBlueprint) -> str:  # said only when it is built
        emit(on_progress, "step", f"building {target.blueprint.image_tag}")
        return engine.build(target, on_line=lambda line: emit(on_progress, "line", line))

    return cached(item, state_dir, build_it, engine.image_id)
