"""The state folder is its owner's alone, and the stack's children get a minimal environment."""

from __future__ import annotations

import ipaddress
import os
import socket
import stat
from pathlib import Path

import pytest

from ncaas_dev.local.stack import localstack_env
from ncaas_dev.ownership import (
    listener_uids,
    netlink_listeners,
    own_endpoint,
    proc_listeners,
    record_endpoint,
    recorded_endpoint,
)
from ncaas_dev.privacy import child_env, tighten, write_private
from ncaas_dev.settings import Settings


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_an_old_world_readable_state_folder_is_tightened(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "jobs" / "a").mkdir(parents=True)
    (state / "jobs" / "a" / "rec.bin").write_bytes(b"x")
    (state / "runners").mkdir()
    (state / "runners" / "run.sh").write_text("#!/bin/sh\n")
    (state / "runners" / "run.sh").chmod(0o755)
    for path in [state, *state.rglob("*")]:
        path.chmod(0o755 if path.is_dir() or path.name == "run.sh" else 0o644)
    tighten(state)
    assert _mode(state) == 0o700
    assert _mode(state / "jobs" / "a") == 0o700
    assert _mode(state / "jobs" / "a" / "rec.bin") == 0o600
    assert _mode(state / "runners" / "run.sh") == 0o700  # still executable, by its owner only


def test_private_files_are_never_readable_by_others(tmp_path: Path) -> None:
    path = tmp_path / "new" / "secret"
    old = os.umask(0)  # the widest umask a developer could have
    try:
        write_private(path, b"s")
    finally:
        os.umask(old)
    assert _mode(path) == 0o600 and _mode(path.parent) == 0o700


def test_children_get_no_real_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "AKIAREAL",
        "AWS_SECRET_ACCESS_KEY": "real-secret",
        "AWS_SESSION_TOKEN": "real-token",
        "AWS_PROFILE": "prod",
        "GITHUB_TOKEN": "ghp_x",
        "NCAAS_STATE_DIR": "/tmp/s",
    }.items():
        monkeypatch.setenv(name, value)
    env = child_env({"EXTRA": "1"})
    assert env["AWS_ACCESS_KEY_ID"] == "test" and env["AWS_SECRET_ACCESS_KEY"] == "test"
    assert env["AWS_SHARED_CREDENTIALS_FILE"] == os.devnull  # ~/.aws is not read either
    assert "AWS_SESSION_TOKEN" not in env and "AWS_PROFILE" not in env
    assert "GITHUB_TOKEN" not in env
    assert env["NCAAS_STATE_DIR"] == "/tmp/s" and env["EXTRA"] == "1"
    assert env["PATH"] == os.environ["PATH"]


def test_localstack_gets_no_real_aws_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "real-secret")
    env = localstack_env(Settings(endpoint_url="http://127.0.0.1:4599", state_dir=tmp_path))
    assert "real-secret" not in env.values()


def test_the_owner_of_a_listening_socket_is_read_from_the_kernel() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert listener_uids(port) == {os.getuid()}
    assert listener_uids(port) == set()


@pytest.mark.parametrize(
    ("family", "host"), [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]
)
def test_netlink_and_the_proc_tables_name_the_same_listeners(family: int, host: str) -> None:
    """The kernel's socket diagnostics are asked first; /proc/net/tcp{,6} is the fallback."""
    with socket.socket(family) as server:
        server.bind((host, 0))
        server.listen()
        port = server.getsockname()[1]
        asked = [found for found in netlink_listeners() if found[1] == port]
        read = proc_listeners(port, Path("/proc"))
        assert asked == read == [(ipaddress.ip_address(host), port, os.getuid())]


def test_an_own_endpoint_is_kept_in_the_state_folder(tmp_path: Path) -> None:
    assert recorded_endpoint(tmp_path) is None
    assert own_endpoint("http://localhost:1", tmp_path) == "http://localhost:1"  # nobody there
    record_endpoint("http://localhost:4570", tmp_path)
    assert _mode(tmp_path / "endpoint") == 0o600
    assert own_endpoint("http://localhost:1", tmp_path) == "http://localhost:4570"
