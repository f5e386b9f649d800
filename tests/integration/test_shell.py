"""`ncaas-dev shell`: the analysis image under a run's own mounts, environment, user, limits
and network; output into --out; no container left after exit, an error or Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import docker.errors
import pytest
from waiting import wait_until  # tests/ is on sys.path: pytest's rootdir conftest

from ncaas_dev.blueprint import LoadedBlueprint
from ncaas_dev.containers import Engine
from ncaas_dev.runs.runner import sandbox_ids

from .jobs import NCAAS_DEV, ncaas

pytestmark = pytest.mark.integration

PROBE = r"""
echo "uid=$(id -u):$(id -g)"
env | grep -E '^(NCAAS_|EXTRA=)' | sort
ls /ncaas/input /ncaas/config
touch /ncaas/input/x 2>/dev/null && echo "input=rw" || echo "input=ro"
echo "net=$(ls /sys/class/net | tr '\n' ' ')"
cg=/sys/fs/cgroup
echo "mem=$(cat $cg/memory/memory.limit_in_bytes 2>/dev/null || cat $cg/memory.max)"
echo made > "$NCAAS_OUTPUT/made.txt"
exit 4
"""


def _shell_containers(engine: Engine, analysis: str) -> list[str]:
    """Ids of the shell's containers (one listing call: no inspect that could race a removal)."""
    labels = ["ncaas.shell", f"ncaas.analysis={analysis}"]
    return [c["Id"] for c in engine.client.api.containers(all=True, filters={"label": labels})]


def _interruptible() -> None:
    """Ctrl-C as on a terminal: a suite started in the background (`make test &`) runs with
    SIGINT ignored, which every child would inherit, and the CLI rightly keeps."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _exec_shell_runs(engine: Engine, analysis: str) -> bool:
    """Whether a shell (bash or sh, besides the keeper's sleep) runs in the shell's container."""
    for container_id in _shell_containers(engine, analysis):
        try:
            top = engine.client.api.top(container_id, ps_args="-o pid,comm")
        except docker.errors.APIError:  # not running yet, or already gone
            continue
        if any(row[-1] in ("bash", "sh") for row in top.get("Processes") or [] if row):
            return True
    return False


def _files(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "rec.bin"
    data.write_bytes(b"x" * 10)
    config = tmp_path / "params.json"
    config.write_text(json.dumps({}))
    return data, config


def test_shell_command_runs_under_the_run_contract(
    probe: LoadedBlueprint, cli_env: dict[str, str], engine: Engine, tmp_path: Path
) -> None:
    data, config = _files(tmp_path)
    out = tmp_path / "out"
    args = ["shell", str(probe.folder), "--data", str(data), "--config", str(config)]
    done = ncaas([*args, "--out", str(out), "--command", PROBE], cli_env)
    assert done.returncode == 4, done.stdout + done.stderr  # the command's own exit code
    lines = done.stdout.splitlines()
    uid, gid = sandbox_ids()
    assert f"uid={uid}:{gid}" in lines
    analysis = probe.blueprint.analysis
    for expected in (
        "NCAAS_DATA=/ncaas/input/rec.bin",
        "NCAAS_CONFIG=/ncaas/config/params.json",
        "NCAAS_OUTPUT=/ncaas/output",
        "NCAAS_DATASET=rec.bin",
        f"NCAAS_ANALYSIS={analysis}",
        "NCAAS_GROUP=labA",
        "EXTRA=yes",  # run.env
        "rec.bin",
        "params.json",
        "input=ro",
        "net=lo ",  # run.network false: no interface but loopback
        f"mem={256 * 2**20}",  # resources.memory
    ):
        assert expected in lines, (expected, lines)
    assert any(line.startswith("NCAAS_JOB=shell_") for line in lines)
    made = out / "made.txt"
    assert made.read_text() == "made\n" and made.stat().st_uid == os.getuid()
    assert _shell_containers(engine, analysis) == []


def test_shell_says_what_earlier_shells_left_in_out(
    probe: LoadedBlueprint, cli_env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = ["shell", str(probe.folder), "--out", str(out), "--command"]
    first = ncaas([*args, 'echo one > "$NCAAS_OUTPUT/one.txt"'], cli_env)
    assert first.returncode == 0, first.stderr
    assert "already holds" not in first.stderr
    second = ncaas([*args, 'ls "$NCAAS_OUTPUT"'], cli_env)
    assert second.returncode == 0, second.stderr
    assert "one.txt" in second.stdout  # kept, and said so
    assert f"{out} already holds 1 file(s) from earlier shells" in second.stderr


def test_shell_reads_commands_from_stdin_and_leaves_nothing(
    probe: LoadedBlueprint, cli_env: dict[str, str], engine: Engine, tmp_path: Path
) -> None:
    done = subprocess.run(
        [str(NCAAS_DEV), "shell", str(probe.folder), "--out", str(tmp_path / "o")],
        input="echo dataset=[$NCAAS_DATASET] user=$(id -u)\nexit 5\n",
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 5, done.stdout + done.stderr
    assert f"dataset=[] user={sandbox_ids()[0]}" in done.stdout
    deadline = time.monotonic() + 10  # the placeholder is removed (and auto-removed) on exit
    while _shell_containers(engine, probe.blueprint.analysis) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _shell_containers(engine, probe.blueprint.analysis) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupting_the_shell_leaves_no_container(
    probe: LoadedBlueprint,
    cli_env: dict[str, str],
    engine: Engine,
    tmp_path: Path,
    sig: signal.Signals,
) -> None:
    analysis = probe.blueprint.analysis
    command = [str(NCAAS_DEV), "shell", str(probe.folder), "--out", str(tmp_path / "o")]
    process = subprocess.Popen(
        [*command, "--command", "sleep 120"],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_interruptible,
    )
    try:
        deadline = time.monotonic() + 60
        while not _shell_containers(engine, analysis) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _shell_containers(engine, analysis), "the shell's container never started"
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
        process.communicate()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr  # Typer answers an interrupt with exit 130, quietly
    assert _shell_containers(engine, analysis) == []


def test_an_interactive_shell_on_a_terminal(
    probe: LoadedBlueprint, cli_env: dict[str, str], engine: Engine, tmp_path: Path
) -> None:
    """On a terminal (a pty from util-linux's `script`) the shell is interactive: a prompt,
    a tty, the contract's environment; exiting it leaves no container."""
    data, _ = _files(tmp_path)
    command = f"{NCAAS_DEV} shell {probe.folder} --data {data} --out {tmp_path / 'o'}"
    process = subprocess.Popen(
        ["script", "-qec", command, "/dev/null"],
        env=cli_env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    analysis = probe.blueprint.analysis
    try:
        deadline = time.monotonic() + 60
        while not _shell_containers(engine, analysis) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _shell_containers(engine, analysis), "the shell's container never started"
        # The exec'd shell reads the terminal from when it runs in the container, not before.
        wait_until(lambda: _exec_shell_runs(engine, analysis), 60, "the exec'd shell running")
        assert process.stdin is not None
        process.stdin.write('echo "tty=$(tty) ds=$NCAAS_DATASET"\nexit 3\n')
        process.stdin.flush()
        output, _ = process.communicate(timeout=60)
    finally:
        process.kill()
        process.communicate()
    assert process.returncode == 3, output
    assert "tty=/dev/pts/" in output and "ds=rec.bin" in output
    deadline = time.monotonic() + 10
    while _shell_containers(engine, analysis) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _shell_containers(engine, analysis) == []
