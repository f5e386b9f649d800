"""`ncaas-dev run` through the session's warm command server, and the same without it: the
exit code, the output and the job are the same, and only the first is served by it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from warm_server import wait_for_command_server

from ncaas_dev.blueprint import LoadedBlueprint
from ncaas_dev.settings import Settings

from .jobs import ncaas

pytestmark = pytest.mark.integration


def served(settings: Settings) -> list[str]:
    log = settings.state_dir / "cmdserver.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [line.split(": ncaas-dev ", 1)[1] for line in lines if ": ncaas-dev " in line]


@pytest.mark.parametrize("through_server", [True, False])
def test_run_is_the_same_with_and_without_the_command_server(
    probe: LoadedBlueprint,
    settings: Settings,
    cli_env: dict[str, str],
    tmp_path: Path,
    through_server: bool,
) -> None:
    env = dict(cli_env)
    if through_server:
        env.pop("NCAAS_NO_COMMAND_SERVER", None)
        wait_for_command_server(settings)
    else:
        env["NCAAS_NO_COMMAND_SERVER"] = "1"
    data = tmp_path / "rec.bin"
    data.write_bytes(b"\x01" * 64)
    out = tmp_path / "out"
    before = len(served(settings))
    args = ["run", str(probe.folder), "--data", str(data), "--out", str(out), "--json"]
    result = ncaas(args, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["state"] == "succeeded"
    now = served(settings)[before:]
    log = settings.state_dir / "cmdserver.log"
    assert now == ([" ".join(args)] if through_server else []), log.read_text()[-2000:]
    failed = ncaas(["run", str(probe.folder), "--data", str(tmp_path / "missing")], env)
    assert failed.returncode == 2 and "missing" in failed.stderr
