"""Request parameters a signed-in user controls, checked: a bad one is a 400 with a reason,
never a 500; and the live streams one session may hold open at once, bounded."""

from __future__ import annotations

import re
import threading
from collections.abc import AsyncIterator

from starlette.requests import Request

MAX_STREAMS = 24  # per session: a job page holds one stream, plus one per dataset's log
_DIGITS = re.compile(r"[0-9]{1,15}")  # ASCII only: "²".isdigit() is True, int("²") raises


class BadParameter(Exception):
    """A query parameter or header that is not what the page expects (HTTP 400)."""


class TooManyStreams(Exception):
    """This session already holds ``MAX_STREAMS`` live streams open (HTTP 429)."""


def whole_number(raw: str, what: str) -> int:
    if not _DIGITS.fullmatch(raw):
        raise BadParameter(f"{what} must be a whole number (0-9 only), not {raw[:40]!r}")
    return int(raw)


def page_number(request: Request) -> int:
    raw = request.query_params.get("page", "") or "1"
    page = whole_number(raw, "page")
    if page < 1:
        raise BadParameter("page must be 1 or more")
    return page


def event_offset(request: Request) -> int:
    """Where a log stream resumes: ``Last-Event-ID`` (a reconnect) or ``?offset=``."""
    header = request.headers.get("last-event-id")
    if header:
        return whole_number(header.strip(), "Last-Event-ID")
    return whole_number(request.query_params.get("offset", "") or "0", "offset")


class StreamSlots:
    """How many live streams each session holds open; past ``limit``, the next is refused."""

    def __init__(self, limit: int = MAX_STREAMS) -> None:
        self.limit = limit
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    def take(self, session: str) -> None:
        with self._lock:
            if self._open.get(session, 0) >= self.limit:
                raise TooManyStreams(
                    f"this session already has {self.limit} live streams open; "
                    "close some of this site's tabs"
                )
            self._open[session] = self._open.get(session, 0) + 1

    def give_back(self, session: str) -> None:
        with self._lock:
            left = self._open.get(session, 0) - 1
            if left > 0:
                self._open[session] = left
            else:
                self._open.pop(session, None)

    def held(self, session: str) -> int:
        with self._lock:
            return self._open.get(session, 0)

    async def hold(self, session: str, stream: AsyncIterator[str]) -> AsyncIterator[str]:
        """``stream``, with the slot (taken already) given back however it ends."""
        try:
            async for chunk in stream:
                yield chunk
        finally:
            self.give_back(session)
