"""The session's warm command server, for integration tests that run `ncaas-dev` through it."""

from __future__ import annotations

import time
from pathlib import Path

from ncaas_dev.entry.front import socket_path
from ncaas_dev.local.stack import start_command_server
from ncaas_dev.settings import Settings


def wait_for_command_server(settings: Settings, timeout: float = 120) -> None:
    """Start the session's command server (as `up` does) and wait until it listens."""
    start_command_server(settings)
    path = Path(socket_path({"NCAAS_STATE_DIR": str(settings.state_dir)}))
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, "the command server never listened"
        time.sleep(0.05)
