"""Engine faults that cannot be caused on a shared machine (a Docker engine restarting under a
running analysis), simulated at the one call they reach."""

from __future__ import annotations

import gc
import os
from typing import Any

import pytest
import requests

from ncaas_dev import containers
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


def test_connect_learns_the_engine_version_once_and_notices_another_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first connect asks the engine its API version; later ones only ping it, and a ping
    that names another version (the engine was upgraded meanwhile) asks again."""
    monkeypatch.setattr(containers, "_api_versions", {})
    host = os.environ.get("DOCKER_HOST", "")
    first = containers.connect()
    learned = containers._api_versions[host]
    assert first.api.api_version == learned
    first.close()

    containers._api_versions[host] = "1.24"  # an older engine's
    again = containers.connect()
    assert again.api.api_version == learned
    assert containers._api_versions[host] == learned
    assert again.ping()
    again.close()


# docker-py leaves the socket of a refused connection to the garbage collector.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("known", [None, "1.41"])
def test_connect_to_no_engine_says_so(known: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    versions = {} if known is None else {"unix:///nonexistent/docker.sock": known}
    monkeypatch.setattr(containers, "_api_versions", versions)
    with pytest.raises(ServiceUnavailable, match="Docker does not answer"):
        containers.connect()
    gc.collect()  # that socket's warning is this test's, not the next one's
