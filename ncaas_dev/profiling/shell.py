"""The analysis image as a shell (filled in next)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import NcaasError

if TYPE_CHECKING:
    from ..api.project import BlueprintLike


def run_shell(
    bp: BlueprintLike,
    data: Path | None,
    config: Path | None,
    out: Path,
    *,
    command: str | None,
    group: str | None,
    interactive: bool,
) -> int:
    raise NcaasError("shell is not implemented yet")
