"""One measured run of the analysis (filled in next)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import NcaasError

if TYPE_CHECKING:
    from ..api.profile import ProfileReport
    from ..api.progress import OnProgress
    from ..api.project import BlueprintLike


def profile_run(
    bp: BlueprintLike,
    data: list[Path],
    config: Path | None,
    headroom: float,
    write: bool,
    on_progress: OnProgress | None,
) -> ProfileReport:
    raise NcaasError("profile is not implemented yet")
