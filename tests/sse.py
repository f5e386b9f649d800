"""Server-Sent Events read the way a browser reads them (the HTML spec's rules: CR, LF and
CRLF each end a line), for the tests that check what a log can or cannot forge."""

from __future__ import annotations

import re


def parse_sse(stream: str) -> list[dict[str, str]]:
    """Each event's fields (``event``, ``id``, ...) and its ``data`` lines joined by LF."""
    found: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    data: list[str] = []
    for line in re.split(r"\r\n|\r|\n", stream):
        if not line:
            if data or fields:
                found.append({**fields, "data": "\n".join(data)})
            fields, data = {}, []
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name:
            fields[name] = value
    return found
