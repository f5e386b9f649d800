"""What a pipe gets: log lines and job names whole, no wrapping, no cutting, no escape codes."""

from __future__ import annotations

import json
import secrets

import pytest

from ncaas_dev.blueprint import LoadedBlueprint
from ncaas_dev.storage import Storage

from .jobs import Lab, ncaas

pytestmark = pytest.mark.integration

LONG = "z" * 300
COLOURED = f"\x1b[31mred\x1b[0m {LONG}"  # an analysis's own colours


def test_logs_and_jobs_through_a_pipe_stay_whole(
    probe: LoadedBlueprint, cli_env: dict[str, str], storage: Storage, dispatcher: int
) -> None:
    lab = Lab(storage, probe.blueprint.analysis)
    data = lab.dataset()
    name = data.rsplit("/", 1)[1]
    stamp = f"20261202T120000Z-{secrets.token_hex(4)}-a-name-an-80-column-table-cuts"
    older = lab.run(dataname="labA/inputs/never-uploaded.bin")  # rejected: quick
    done = lab.run(dataname=data, configname=lab.config(say=COLOURED), timestamp=stamp)
    assert done.job.startswith(f"job_{stamp}")

    # ncaas() captures stdout through a pipe, as `ncaas-dev logs ... | awk` would.
    for follow in ([], ["-f"]):
        logs = ncaas(["logs", lab.bucket, done.job, *follow], cli_env)
        assert logs.returncode == 0, logs.stderr
        assert f"{name} | red {LONG}" in logs.stdout.splitlines(), logs.stdout
        assert "\x1b" not in logs.stdout

    listing = ncaas(["jobs", lab.bucket], cli_env)
    assert listing.returncode == 0, listing.stderr
    assert "\x1b" not in listing.stdout and "…" not in listing.stdout
    row = next(line for line in listing.stdout.splitlines() if done.job in line)
    assert "succeeded" in row
    as_json = json.loads(ncaas(["jobs", lab.bucket, "--json"], cli_env).stdout)
    names = [j["job"] for j in as_json]
    assert {done.job, older.job} <= set(names)
    # Newest first, as in the API: by job folder name (its timestamp), a page at a time.
    assert names == sorted(names, reverse=True)
    rows = [line for line in listing.stdout.splitlines() if "job_" in line]
    assert names[0] in rows[0]
