"""``shell``: the analysis image under a run's own mounts, environment, user, limits and
network, interactive or for one command."""

from __future__ import annotations

import os
from pathlib import Path

from .project import BlueprintLike


def shell(
    bp: BlueprintLike,
    data: str | os.PathLike[str] | None = None,
    config: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] = "ncaas-shell-output",
    *,
    command: str | None = None,
    group: str | None = None,
    interactive: bool = True,
) -> int:
    """Start a container as a real run would (the same ``/ncaas/input``, ``/ncaas/config`` and
    ``/ncaas/output`` mounts, ``NCAAS_*`` environment, user, CPU and memory limits, network
    setting), with ``out`` as ``/ncaas/output``. ``command`` runs ``sh -c COMMAND``; without it,
    an interactive shell. Returns the exit code; the container is removed in every case
    (exit, error, Ctrl-C)."""
    from ..profiling.shell import run_shell

    return run_shell(
        bp,
        Path(data) if data else None,
        Path(config) if config else None,
        Path(out),
        command=command,
        group=group,
        interactive=interactive,
    )
