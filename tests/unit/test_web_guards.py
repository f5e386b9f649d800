"""The web client against hostile input, its pure parts: SSE framing of any bytes, parameters
that must be whole numbers, bounded config parsing, and the per-session stream limit."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sse import parse_sse  # tests/ is on sys.path: pytest's rootdir conftest

from ncaas_dev.errors import UsageError
from ncaas_dev.presign import download_params
from ncaas_dev.web.auth import MAX_TOKENS, TOKEN_SECONDS, Sessions, Tokens
from ncaas_dev.web.configcheck import MAX_DEPTH, config_problem
from ncaas_dev.web.live import event
from ncaas_dev.web.params import BadParameter, StreamSlots, TooManyStreams, whole_number
from ncaas_dev.web.security import content_security_policy
from ncaas_dev.web.server import web_origin

T = TypeVar("T")


def run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on a thread of its own: a browser test earlier in the session (Playwright's
    sync API) may leave an event loop running on this one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def test_cr_in_log_data_neither_cuts_nor_spoofs_the_stream() -> None:
    hostile = "a\rid: 0\r\revent: end\r\ndata: spoof\n\nretry: 1\rb"
    events = parse_sse(event(hostile, name="log", event_id=42) + event("", name="end"))
    assert [e.get("event") for e in events] == ["log", "end"]
    assert events[0]["id"] == "42" and "retry" not in events[0]
    assert events[0]["data"] == "a\nid: 0\n\nevent: end\ndata: spoof\n\nretry: 1\nb"


@settings(max_examples=300, deadline=None, database=None)
@given(st.text(st.sampled_from(list("ab:\r\n ")), max_size=40))
def test_any_data_is_one_event_carrying_it(data: str) -> None:
    events = parse_sse(event(data, name="log", event_id=7))
    assert len(events) == 1 and events[0]["event"] == "log" and events[0]["id"] == "7"
    assert events[0]["data"] == re.sub(r"\r\n|\r", "\n", data)


@pytest.mark.parametrize("raw", ["abc", "²", "1²", "-1", "1.5", " 1", "\u0661", "9" * 16, ""])
def test_whole_numbers_are_ascii_digits_only(raw: str) -> None:
    with pytest.raises(BadParameter, match="must be a whole number"):
        whole_number(raw, "page")


def test_whole_number_accepts_digits() -> None:
    assert whole_number("0", "x") == 0 and whole_number("123", "x") == 123


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("deep.json", b"[" * 512 * 1024 + b"]" * 512 * 1024),
        ("deep.yaml", b"[" * 512 * 1024 + b"]" * 512 * 1024),
        ("deep.yaml", b"{a: " * 200_000),
        (
            "deep.yaml",
            "".join(" " * i + "- x:\n" for i in range(0, 2 * (MAX_DEPTH + 5), 2)).encode(),
        ),
        ("small.yaml", b"[" * 10_000),
    ],
)
def test_deeply_nested_configs_get_a_clean_answer_quickly(name: str, body: bytes) -> None:
    started = time.monotonic()
    problem = config_problem(name, body)
    assert problem and ("nested" in problem or "nesting" in problem), problem
    assert time.monotonic() - started < 5


def test_streams_per_session_are_bounded_and_given_back() -> None:
    slots = StreamSlots(limit=2)

    async def body() -> AsyncIterator[str]:
        yield "x"

    async def drain(stream: AsyncIterator[str]) -> list[str]:
        return [chunk async for chunk in stream]

    slots.take("s1")
    slots.take("s1")
    with pytest.raises(TooManyStreams, match="2 live streams"):
        slots.take("s1")
    slots.take("s2")  # another session is not affected
    assert run_coroutine(drain(slots.hold("s1", body()))) == ["x"]
    assert slots.held("s1") == 1
    slots.take("s1")


def test_sign_in_tokens_expire_after_ten_minutes_and_are_bounded() -> None:
    now = [0.0]
    tokens = Tokens(clock=lambda: now[0])
    early, late = tokens.issue(), tokens.issue()
    now[0] = TOKEN_SECONDS - 1
    assert tokens.consume(early)
    now[0] = TOKEN_SECONDS + 1
    assert not tokens.consume(late)  # 10 minutes and a second: expired
    many = [tokens.issue() for _ in range(MAX_TOKENS + 5)]
    assert len(tokens) == MAX_TOKENS
    assert not tokens.consume(many[0]) and tokens.consume(many[-1])  # the oldest gave way


def test_sessions_are_revoked_by_id() -> None:
    sessions = Sessions(limit=3)
    first, second = sessions.open(), sessions.open()
    assert sessions.live(first) and sessions.live(second)
    sessions.revoke(first)
    assert not sessions.live(first) and sessions.live(second)
    assert not sessions.live(None) and not sessions.live("guess")
    [sessions.open() for _ in range(3)]
    assert not sessions.live(second)  # bounded: the oldest is dropped


@pytest.mark.parametrize(
    ("origin", "ok"),
    [("https://ncaas.lab.example", True), ("http://lab-pc:8765", False), (None, False)],
)
def test_cloud_off_loopback_needs_an_https_origin(origin: str | None, ok: bool) -> None:
    if ok:
        assert web_origin("0.0.0.0", 8765, origin, cloud=True) == origin
    else:
        with pytest.raises(UsageError):
            web_origin("0.0.0.0", 8765, origin, cloud=True)
    assert web_origin("127.0.0.1", 8765, None, cloud=True) == "http://127.0.0.1:8765"


@pytest.mark.parametrize(
    ("path", "disposition", "kind"),
    [
        ("rec.bin/spikes.png", None, "image/png"),
        ("logs/rec.bin.log", None, "text/plain; charset=utf-8"),
        ("rec.bin/page.html", "page.html", "application/octet-stream"),
        ("rec.bin/figure.svg", "figure.svg", "application/octet-stream"),
        ('rec.bin/a"b\\c;\r\nX-Evil: 1.csv', "a_b_c___X-Evil_ 1.csv", "application/octet-stream"),
        ("rec.bin/résumé.pdf", "r_sum_.pdf", "application/octet-stream"),
    ],
)
def test_downloads_are_attachments_with_escaped_names(
    path: str, disposition: str | None, kind: str
) -> None:
    params = download_params(path)
    assert params["ResponseContentType"] == kind
    header = params.get("ResponseContentDisposition")
    if disposition is None:
        assert header is None
        return
    assert header is not None and header.startswith(f'attachment; filename="{disposition}";')
    assert "\r" not in header and "\n" not in header and header.count('"') == 2
    assert header.endswith("filename*=UTF-8''" + quote(path.rsplit("/", 1)[1], safe=""))


def test_csp_allows_no_inline_script_and_no_framing() -> None:
    policy = content_security_policy(("http://127.0.0.1:4566",))
    assert "script-src 'self';" in policy and "unsafe-inline';" not in policy.split("style")[0]
    assert "frame-ancestors 'none'" in policy
    assert "connect-src 'self' http://127.0.0.1:4566" in policy


def test_config_checks_run_in_a_worker_that_a_stuck_check_takes_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ncaas_dev.web import checking

    slow = b"a: 1\n" * 200_000  # about 2 s of libyaml
    monkeypatch.setattr(checking, "CHECK_SECONDS", 0.2)
    assert "took over" in (run_coroutine(checking.check_config("big.yaml", slow)) or "")
    monkeypatch.setattr(checking, "CHECK_SECONDS", 60.0)  # a fresh worker answers the next one
    assert run_coroutine(checking.check_config("ok.yaml", b"a: [1, 2]\n")) is None
    found = run_coroutine(checking.check_config("bad.json", b'{"a": }'))
    assert found and found.startswith("line 1, column 7")
