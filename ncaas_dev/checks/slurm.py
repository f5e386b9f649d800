"""Is there a usable SLURM cluster here? The checks `doctor --launcher slurm` prints and the
ones `run`/`up --launcher slurm` require before submitting anything."""

from __future__ import annotations

import shutil
import subprocess

from ..blueprint import Blueprint
from ..errors import NcaasError, UsageError
from .doctor import Check, Level

LOCAL_FIX = "make slurm (or sudo scripts/ensure-slurm.sh) starts the local single-node cluster"
USABLE_NODE_STATES = ("idle", "mixed", "allocated", "completing")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=20, check=False)


def check_tools() -> Check:
    missing = [t for t in ("sinfo", "sbatch", "squeue", "scancel") if shutil.which(t) is None]
    if missing:
        return Check(
            "slurm tools", Level.FAIL, f"{', '.join(missing)} not on PATH", f"{LOCAL_FIX}, or "
            "run the dispatcher on the cluster's login node",
        )  # fmt: skip
    return Check("slurm tools", Level.OK, "sinfo, sbatch, squeue and scancel found")


def check_munge() -> Check:
    if shutil.which("munge") is None:
        return Check("munge", Level.WARN, "munge not on PATH (fine if the site uses another auth)")
    token = _run("munge", "-n")
    if token.returncode != 0:
        return Check(
            "munge", Level.FAIL, f"munge cannot make a credential: {token.stderr.strip()}",
            "start munged (" + LOCAL_FIX + ")",
        )  # fmt: skip
    return Check("munge", Level.OK, "munged answers")


def node_states() -> dict[str, str]:
    """Each node's state, as sinfo says (raises NcaasError if the controller does not answer)."""
    done = _run("sinfo", "-h", "-N", "-o", "%N %T")
    if done.returncode != 0:
        raise NcaasError(
            f"sinfo failed: {(done.stderr or done.stdout).strip()}",
            hint=f"is slurmctld running? {LOCAL_FIX}",
        )
    pairs = (line.split() for line in done.stdout.splitlines() if line.strip())
    return {p[0]: p[1] for p in pairs if len(p) == 2}


def check_nodes() -> Check:
    states = node_states()
    usable = [n for n, s in states.items() if s.rstrip("*~#!%$@^-") in USABLE_NODE_STATES]
    others = [f"{n} is {s}" for n, s in states.items() if n not in usable]
    if not usable:
        fix = "scontrol update nodename=NODE state=resume, as root; or " + LOCAL_FIX
        return Check("slurm nodes", Level.FAIL, "no usable node: " + ", ".join(others), fix)
    detail = f"{len(usable)} usable node(s)" + (f"; {', '.join(others)}" if others else "")
    return Check("slurm nodes", Level.WARN if others else Level.OK, detail)


def partitions() -> list[str]:
    done = _run("sinfo", "-h", "-o", "%R")
    return sorted({p.strip() for p in done.stdout.split() if p.strip()})


def check_partition(blueprint: Blueprint) -> None:
    """A blueprint's slurm.partition exists on this cluster, or a usage error naming it."""
    wanted = blueprint.slurm.partition
    if wanted is None:
        return
    known = partitions()
    if known and wanted not in known:
        raise UsageError(
            f"slurm.partition {wanted!r} of {blueprint.analysis} is not a partition of this "
            f"cluster (it has {', '.join(known)})",
            hint="fix slurm.partition in blueprint.yaml (null: the default partition)",
        )


def require_slurm() -> None:
    """Raise NcaasError saying what to fix unless SLURM can take jobs from here."""
    for check in (check_tools(), check_nodes()):
        if check.level == Level.FAIL:
            raise NcaasError(f"SLURM is not usable: {check.detail}", hint=check.fix)


def slurm_checks() -> list[Check]:
    from .doctor import _guarded

    return [
        _guarded("slurm tools", check_tools),
        _guarded("munge", check_munge),
        _guarded("slurm nodes", check_nodes),
    ]
