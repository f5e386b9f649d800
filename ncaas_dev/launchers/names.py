"""The launchers' names, written once: what `--launcher` accepts everywhere (light to import:
the CLI checks a name before anything heavy is loaded)."""

from __future__ import annotations

from ..errors import UsageError

LAUNCHERS = ("docker", "ec2", "slurm", "batch")


def check_launcher(launcher: str) -> str:
    """``launcher`` if it is one of LAUNCHERS, else a usage error naming the choices."""
    if launcher not in LAUNCHERS:
        choices = ", ".join(LAUNCHERS[:-1]) + f" or {LAUNCHERS[-1]}"
        raise UsageError(f"unknown launcher {launcher!r}", hint=f"use --launcher {choices}")
    return launcher
