"""The datasets a group can pick: its files in inputs/, and each folder there as one dataset.

A folder uploaded from the browser (or by `run --data DIR`) is one dataset: its key is the
folder prefix ending in ``/``, and the runner downloads it whole with its sub-paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class Listed(Protocol):
    key: str
    size: int


@dataclass(frozen=True)
class Choice:
    key: str  # an object key, or a folder prefix ending in "/"
    label: str  # as the group sees it, relative to its inputs/
    size: int
    files: int  # 1 for a file; how many it holds for a folder


def dataset_choices(objects: list[Listed], prefix: str) -> list[Choice]:
    """``objects`` under ``prefix`` (``{group}/inputs/``): top-level files as they are, and the
    files of each top-level folder gathered into one choice."""
    files: list[Choice] = []
    folders: dict[str, list[int]] = {}
    for obj in objects:
        if not obj.key.startswith(prefix) or obj.key.endswith("/"):
            continue
        relative = obj.key[len(prefix) :]
        top, _, rest = relative.partition("/")
        if rest:
            folders.setdefault(top, []).append(obj.size)
        else:
            files.append(Choice(obj.key, relative, obj.size, 1))
    gathered = [
        Choice(f"{prefix}{name}/", f"{name}/", sum(sizes), len(sizes))
        for name, sizes in folders.items()
    ]
    return sorted(files + gathered, key=lambda c: c.label)
