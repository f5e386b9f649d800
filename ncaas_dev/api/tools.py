"""The project's tools as functions: ``init`` (a blueprint that runs as it is), ``import_neurocaas``
(a NeuroCAAS stack config becomes a blueprint folder) and ``doctor`` (what is missing, and how
to fix it). The CLI's `init`, `import` and `doctor` call these and only render."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..launchers.names import check_launcher
from .context import Context

if TYPE_CHECKING:
    from ..checks.doctor import Check
    from ..compat.importer import Imported

__all__ = ["doctor", "import_neurocaas", "init"]


def init(name: str | Path) -> Path:
    """Scaffold the blueprint folder ``name``; returns it."""
    from ..scaffold import scaffold

    return scaffold(Path(name))


def import_neurocaas(template: str | Path, out: str | Path | None = None) -> tuple[Path, Imported]:
    """A NeuroCAAS ``stack_config_template.json`` as a blueprint folder (``out``, default
    ``./ANALYSIS``); returns the folder and what mapped where."""
    from ..compat.importer import import_template

    return import_template(Path(template), Path(out) if out is not None else None)


def doctor(
    blueprint_dir: str | Path | None = None,
    *,
    cloud: bool = False,
    launcher: str = "docker",
    endpoint_url: str | None = None,
) -> list[Check]:
    """Every check (Docker, the local stack, Packer, credentials, the blueprint's AMI; with
    ``launcher="slurm"`` the cluster too, with ``launcher="batch"`` the local Batch server and
    its runner image), each with its ``level`` (ok, warn, fail) and fix."""
    from ..blueprint import load_blueprint
    from ..checks.doctor import diagnose

    launcher = check_launcher(launcher)
    loaded = load_blueprint(Path(blueprint_dir)) if blueprint_dir else None
    settings = Context.create(endpoint_url, cloud=cloud).settings
    checks = diagnose(settings, loaded)
    if launcher == "slurm":
        from ..checks.slurm import slurm_checks

        checks += slurm_checks()
    if launcher == "batch" and not cloud:
        from ..checks.batch import batch_checks

        checks += batch_checks(settings.state_dir)
    return checks
