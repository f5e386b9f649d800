"""Engine faults that cannot be caused on a shared machine (a Docker engine restarting under a
running analysis), simulated at the one call they reach."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from ncaas_dev.containers import Engine
from ncaas_dev.errors import ServiceUnavailable


class _Container:
    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls: list[str] = []

    def wait(self, timeout: float) -> dict[str, Any]:
        raise self.error

    def kill(self) -> None:
        self.calls.append("kill")
        raise self.error

    def remove(self, force: bool) -> None:
        self.calls.append("remove")
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        requests.exceptions.ReadTimeout("read timeout"),
        requests.exceptions.ConnectionError(
            "UnixHTTPConnectionPool(host='localhost', port=None): Read timed out."
        ),
    ],
)
def test_a_wait_that_times_out_is_the_timeout(error: Exception) -> None:
    assert Engine.wait(_Container(error), timeout=1) is None


def test_an_engine_that_goes_away_is_not_a_timeout() -> None:
    gone = requests.exceptions.ConnectionError("('Connection aborted.', RemoteDisconnected())")
    with pytest.raises(ServiceUnavailable, match="Docker engine stopped answering"):
        Engine.wait(_Container(gone), timeout=1)


def test_kill_and_remove_survive_an_engine_that_is_gone() -> None:
    gone = _Container(requests.exceptions.ConnectionError("Connection refused"))
    Engine.kill(gone)  # neither raises: the runner records its result after them
    Engine.remove(gone)
    assert gone.calls == ["kill", "remove"]
