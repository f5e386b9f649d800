"""The suite's one waiting helper fails loudly, and returns what it waited for."""

from __future__ import annotations

import socket
import time

import pytest
from waiting import free_port, wait_until  # tests/ is on sys.path: pytest's rootdir conftest


def test_wait_until_returns_the_first_truthy_answer() -> None:
    answers = iter([None, 0, "", "ready"])
    assert wait_until(lambda: next(answers), 5, "ready", interval=0) == "ready"


def test_wait_until_fails_past_its_deadline_naming_what() -> None:
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"not the moon within 0.2 s \(last: False\)"):
        wait_until(lambda: False, 0.2, "the moon")
    assert time.monotonic() - started < 5


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
