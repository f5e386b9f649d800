"""Waiting in tests, written once: poll a condition with a deadline (never a fixed sleep standing
in for synchronisation), and pick a free loopback port."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """``predicate()``'s first truthy answer, polled every ``interval`` s; past ``timeout`` s an
    AssertionError saying what did not happen (and the last answer)."""
    deadline = time.monotonic() + timeout
    while True:
        found = predicate()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} within {timeout:g} s (last: {found!r})")
        time.sleep(interval)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now (the OS's pick). Another process may take it before the
    caller binds it: callers that can should bind port 0 themselves."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
