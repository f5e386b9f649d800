"""LocalStack's environment: its gateway binds a loopback address, whatever the endpoint says."""

from __future__ import annotations

from pathlib import Path

import pytest

from ncaas_dev.local.stack import localstack_env
from ncaas_dev.settings import Settings


@pytest.mark.parametrize(
    ("endpoint", "listen"),
    [
        ("http://localhost:4566", "127.0.0.1:4566"),
        ("http://127.0.0.1:4599", "127.0.0.1:4599"),
        ("http://127.0.0.2:4566", "127.0.0.2:4566"),
        ("http://[::1]:4566", "[::1]:4566"),
        ("http://0.0.0.0:4566", "127.0.0.1:4566"),
        ("http://192.0.2.10:4566", "127.0.0.1:4566"),
        ("http://localstack.example:4566", "127.0.0.1:4566"),
    ],
)
def test_the_gateway_listens_on_loopback_only(endpoint: str, listen: str, tmp_path: Path) -> None:
    env = localstack_env(Settings(endpoint_url=endpoint, state_dir=tmp_path))
    assert env["GATEWAY_LISTEN"] == listen
    # The default server (twisted) binds every address whatever GATEWAY_LISTEN says.
    assert env["GATEWAY_SERVER"] == "hypercorn"


def test_the_environment_cannot_widen_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_SERVER", "twisted")
    monkeypatch.setenv("GATEWAY_LISTEN", "0.0.0.0:4566")
    env = localstack_env(Settings(endpoint_url="http://localhost:4566", state_dir=tmp_path))
    assert (env["GATEWAY_SERVER"], env["GATEWAY_LISTEN"]) == ("hypercorn", "127.0.0.1:4566")
