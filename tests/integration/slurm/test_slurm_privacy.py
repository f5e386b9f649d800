"""The local cluster keeps each user's jobs to that user (PrivateData=jobs) and its logs to
root (scripts/ensure-slurm.sh): a neighbour sees neither our job nor its comment."""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

from ..other_user import other_user

SLURM_HOME = Path(os.environ.get("NCAAS_SLURM_HOME", "/var/lib/ncaas-slurm"))


def test_a_neighbour_sees_neither_our_jobs_nor_the_logs(slurm_node: str) -> None:
    comment = f"bucket-labA-job-{secrets.token_hex(4)}"
    submitted = subprocess.run(
        ["sbatch", "--parsable", "--comment", comment, "-o", "/dev/null", "--wrap", "sleep 60"],
        capture_output=True,
        text=True,
        check=True,
    )
    job = submitted.stdout.strip().split(";")[0]
    try:
        mine = subprocess.run(
            ["squeue", "-h", "-j", job, "-o", "%k"], capture_output=True, text=True
        )
        assert comment in mine.stdout  # the control: its owner sees it
        with other_user() as neighbour:
            theirs = neighbour.run(["squeue", "-h", "-a", "-o", "%i %k"])
            assert theirs.returncode == 0, theirs.stderr
            assert comment not in theirs.stdout and job not in theirs.stdout.split()
            shown = neighbour.run(["scontrol", "show", "job", job])
            assert comment not in shown.stdout
            logs = neighbour.run(["ls", str(SLURM_HOME / "log")])
            assert logs.returncode != 0, logs.stdout
    finally:
        subprocess.run(["scancel", job], check=False)
