"""The web client's pure parts: config checks, part sizes, sign-in tokens, redirects, SSE."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ncaas_dev.api.browse import MAX_OBJECT, MAX_PARTS, MIN_PART, part_size, submission_id
from ncaas_dev.errors import UsageError
from ncaas_dev.web.auth import Tokens, id_token_claims, safe_next
from ncaas_dev.web.configcheck import config_problem
from ncaas_dev.web.live import event
from ncaas_dev.web.server import web_origin


@pytest.mark.parametrize(
    ("name", "body", "problem"),
    [
        ("params.yaml", b"a: 1\nb: [2, 3]\n", None),
        ("params.json", b'{"a": 1}', None),
        (
            "params.yaml",
            b"a: 1\nb: c: d\n",
            "line 2, column 5: mapping values are not allowed here",
        ),
        ("params.yml", b"a: [1, 2\nb: 3\n", "line 2, column 2:"),
        ("params.json", b'{"a": 1,\n "b": }', "line 2, column 7: Expecting value"),
        ("params.yaml", b"\xff\xfe", "byte 1: not UTF-8 text"),
    ],
)
def test_config_problem_names_the_line(name: str, body: bytes, problem: str | None) -> None:
    found = config_problem(name, body)
    if problem is None:
        assert found is None
    else:
        assert found is not None and found.startswith(problem), found


def test_part_sizes_fit_s3s_limits() -> None:
    assert part_size(0) == part_size(1) == MIN_PART == 8 * 1024**2
    assert part_size(MIN_PART * MAX_PARTS) == MIN_PART  # 10,000 parts of 8 MiB: 78.1 GiB
    assert part_size(MIN_PART * MAX_PARTS + 1) == MIN_PART + 1024**2
    biggest = part_size(MAX_OBJECT)
    assert biggest * MAX_PARTS >= MAX_OBJECT and biggest % 1024**2 == 0
    for size in (MIN_PART * MAX_PARTS + 1, 3 * 1024**4, MAX_OBJECT):
        assert -(-size // part_size(size)) <= MAX_PARTS


def test_tokens_work_once() -> None:
    tokens = Tokens()
    first, second = tokens.issue(), tokens.issue()
    assert tokens.consume(first) and not tokens.consume(first)
    assert not tokens.consume("guess") and tokens.consume(second)


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("/a/x/jobs?page=2", "/a/x/jobs?page=2"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        (None, "/"),
        ("jobs", "/"),
    ],
)
def test_sign_in_returns_only_to_this_site(given: str | None, kept: str) -> None:
    assert safe_next(given) == kept


def test_sse_event_carries_every_line_and_its_id() -> None:
    assert event("a\nb", name="log", event_id=12) == "event: log\nid: 12\ndata: a\ndata: b\n\n"


def test_id_token_claims_and_submission_id() -> None:
    import base64
    import json

    payload = base64.urlsafe_b64encode(json.dumps({"cognito:groups": ["labA"]}).encode())
    token = f"h.{payload.decode().rstrip('=')}.s"
    assert id_token_claims(token)["cognito:groups"] == ["labA"]
    assert submission_id("labA/submissions/20261130T000000Z-abc123_submit.json") == (
        "20261130T000000Z-abc123"
    )


@pytest.mark.parametrize(
    ("host", "origin", "expected"),
    [
        ("127.0.0.1", None, "http://127.0.0.1:8765"),
        ("localhost", None, "http://localhost:8765"),
        ("::1", None, "http://[::1]:8765"),
        ("192.168.1.5", "http://192.168.1.5:8765", "http://192.168.1.5:8765"),
        ("0.0.0.0", "http://lab-pc:8765/", "http://lab-pc:8765"),
        ("::", "https://ncaas.lab.example", "https://ncaas.lab.example"),
    ],
)
def test_web_origin_is_the_address_browsers_open(
    host: str, origin: str | None, expected: str
) -> None:
    assert web_origin(host, 8765, origin) == expected


@pytest.mark.parametrize(
    ("host", "origin", "named"),
    [
        ("0.0.0.0", None, "--origin http://THIS-MACHINE:8765"),
        ("::", None, "--origin http://THIS-MACHINE:8765"),
        ("192.168.1.5", None, "--origin http://THIS-MACHINE:8765"),  # off loopback: named
        ("lab-pc", None, "--origin http://THIS-MACHINE:8765"),
        ("0.0.0.0", "lab-pc:8765", "scheme://host[:port]"),
        ("0.0.0.0", "http://lab-pc:8765/app", "scheme://host[:port]"),
    ],
)
def test_web_origin_refuses_what_no_browser_opens(
    host: str, origin: str | None, named: str
) -> None:
    with pytest.raises(UsageError) as refused:
        web_origin(host, 8765, origin)
    assert named in (refused.value.hint or "")


def test_web_on_every_interface_without_origin_is_a_usage_error() -> None:
    # Before: it served with the CORS origin http://0.0.0.0:8765, which no browser sends.
    done = subprocess.run(
        [sys.executable, "-m", "ncaas_dev", "web", "--host", "0.0.0.0", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "listens on every interface" in done.stderr and "--origin" in done.stderr
