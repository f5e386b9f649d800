"""Browser uploads straight to S3: big files, a failing part, a reload mid-upload, cancel,
and the 5 TiB limit. The web server sees only small JSON requests."""

from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import Page, Request, Route, expect

from ncaas_dev.blueprint import LoadedBlueprint
from ncaas_dev.storage import Storage

from .conftest import SignIn, Web, make_file, screenshot

pytestmark = pytest.mark.integration
MiB = 1024**2
# 256 MiB by default; NCAAS_WEB_UPLOAD_MIB=1024 for the 1 GiB run.
BIG_MIB = int(os.environ.get("NCAAS_WEB_UPLOAD_MIB", "256"))


def _part(request: Request) -> int | None:
    query = parse_qs(urlparse(request.url).query)
    return (
        int(query["partNumber"][0]) if request.method == "PUT" and "partNumber" in query else None
    )


def _sha256_object(storage: Storage, bucket: str, key: str) -> str:
    body = storage.s3.get_object(Bucket=bucket, Key=key)["Body"]
    digest = hashlib.sha256()
    for chunk in iter(lambda: body.read(8 * MiB), b""):
        digest.update(chunk)
    return digest.hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(8 * MiB), b""):
            digest.update(chunk)
    return digest.hexdigest()


class Traffic:
    """What the page sent: parts to S3 (by number) and the largest body sent to the server."""

    def __init__(self, page: Page, web: Web) -> None:
        self.parts: list[int] = []
        self.parts_ok: list[int] = []
        self.largest_to_server = 0
        self.server_requests = 0
        self.web = web
        page.on("request", self._request)
        page.on("requestfinished", self._finished)

    def _request(self, request: Request) -> None:
        if request.url.startswith(self.web.url):
            self.server_requests += 1
            body = request.post_data_buffer
            self.largest_to_server = max(self.largest_to_server, len(body or b""))
        elif (n := _part(request)) is not None:
            self.parts.append(n)

    def _finished(self, request: Request) -> None:
        response = request.response()
        if (n := _part(request)) is not None and response is not None and response.status == 200:
            self.parts_ok.append(n)


def _open(sign_in: SignIn, web: Web, bucket: str) -> Page:
    page = sign_in("labA", "alice")
    page.goto(f"{web.url}/a/{bucket}")
    return page


def _row(page: Page, name: str) -> Any:
    return page.locator(f"#uploads li[data-name='{name}']")


def test_big_upload_goes_straight_to_s3(
    web: Web, sign_in: SignIn, probe: LoadedBlueprint, storage: Storage, tmp_path: Path
) -> None:
    bucket = probe.blueprint.analysis
    path = make_file(tmp_path / f"big-{BIG_MIB}.bin", BIG_MIB * MiB)
    page = _open(sign_in, web, bucket)
    traffic = Traffic(page, web)
    started = time.monotonic()
    page.set_input_files("#pick-inputs", str(path))
    row = _row(page, path.name)
    expect(row.locator(".status")).to_have_text("uploaded", timeout=600_000)
    elapsed = time.monotonic() - started
    assert row.locator("progress").evaluate("p => p.value") == 100
    expect(row.locator(".pct")).to_have_text("100%")
    screenshot(page, "upload-done")
    key = f"labA/inputs/{path.name}"
    assert _sha256_object(storage, bucket, key) == _sha256_file(path)
    assert len(set(traffic.parts_ok)) == BIG_MIB // 8 > 1
    assert traffic.largest_to_server < MiB, traffic.largest_to_server
    print(f"browser upload of {BIG_MIB} MiB: {elapsed:.1f} s, {BIG_MIB / elapsed:.0f} MiB/s")


def test_a_failed_part_is_retried(
    web: Web, sign_in: SignIn, probe: LoadedBlueprint, storage: Storage, tmp_path: Path
) -> None:
    bucket = probe.blueprint.analysis
    path = make_file(tmp_path / "flaky.bin", 20 * MiB)  # 3 parts
    page = _open(sign_in, web, bucket)
    traffic = Traffic(page, web)
    failed: list[int] = []

    def fail_part_two_once(route: Route, request: Request) -> None:
        if _part(request) == 2 and not failed:
            failed.append(2)
            route.fulfill(status=500, body="injected failure")
        else:
            route.continue_()

    page.route(re.compile(r".*partNumber=.*"), fail_part_two_once)
    page.set_input_files("#pick-inputs", str(path))
    expect(_row(page, path.name).locator(".status")).to_have_text("uploaded", timeout=60_000)
    assert failed == [2]
    assert traffic.parts.count(2) == 2
    assert _sha256_object(storage, bucket, f"labA/inputs/{path.name}") == _sha256_file(path)


def _hold_parts_after(page: Page, first: int) -> list[Route]:
    """Parts numbered above ``first`` hang (never answered) until the page goes away."""
    held: list[Route] = []

    def handler(route: Route, request: Request) -> None:
        n = _part(request)
        if n is not None and n > first:
            held.append(route)
        else:
            route.continue_()

    page.route(re.compile(r".*partNumber=.*"), handler)
    return held


def test_reload_mid_upload_resumes_with_the_missing_parts_only(
    web: Web, sign_in: SignIn, probe: LoadedBlueprint, storage: Storage, tmp_path: Path
) -> None:
    bucket = probe.blueprint.analysis
    path = make_file(tmp_path / "resume.bin", 60 * MiB)  # 8 parts of 8 MiB
    page = _open(sign_in, web, bucket)
    traffic = Traffic(page, web)
    _hold_parts_after(page, 3)
    page.set_input_files("#pick-inputs", str(path))
    deadline = time.monotonic() + 60
    while len(set(traffic.parts_ok)) < 3 and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert sorted(set(traffic.parts_ok)) == [1, 2, 3]
    page.reload()  # the held parts are dropped with the page
    page.unroute(re.compile(r".*partNumber=.*"))
    key = f"labA/inputs/{path.name}"
    ups = storage.s3.list_multipart_uploads(Bucket=bucket, Prefix=key).get("Uploads", [])
    assert len(ups) == 1  # a reload does not abort the upload (only Cancel does)
    second = Traffic(page, web)
    page.set_input_files("#pick-inputs", str(path))
    row = _row(page, path.name)
    expect(row.locator(".status")).to_have_text("uploaded", timeout=60_000)
    assert sorted(second.parts) == [4, 5, 6, 7, 8]
    assert _sha256_object(storage, bucket, f"labA/inputs/{path.name}") == _sha256_file(path)


def test_cancel_aborts_the_upload(
    web: Web, sign_in: SignIn, probe: LoadedBlueprint, storage: Storage, tmp_path: Path
) -> None:
    bucket = probe.blueprint.analysis
    path = make_file(tmp_path / "cancelled.bin", 30 * MiB)
    page = _open(sign_in, web, bucket)
    traffic = Traffic(page, web)
    _hold_parts_after(page, 1)
    page.set_input_files("#pick-inputs", str(path))
    deadline = time.monotonic() + 30
    while not traffic.parts_ok and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    row = _row(page, path.name)
    row.locator("button.cancel").click()
    expect(row.locator(".status")).to_have_text("cancelled")
    key = f"labA/inputs/{path.name}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pending = storage.s3.list_multipart_uploads(Bucket=bucket, Prefix=key).get("Uploads", [])
        if not pending:
            break
        time.sleep(0.2)
    assert not pending
    assert storage.head(bucket, key) is None


def test_over_5_tib_is_refused_before_sending(
    web: Web, sign_in: SignIn, probe: LoadedBlueprint, tmp_path: Path
) -> None:
    path = tmp_path / "huge.bin"
    path.touch()
    os.truncate(path, 5 * 1024**4 + 1)  # sparse: no disk used
    page = _open(sign_in, web, probe.blueprint.analysis)
    traffic = Traffic(page, web)
    before = traffic.server_requests
    page.set_input_files("#pick-inputs", str(path))
    row = _row(page, path.name)
    expect(row.locator(".status")).to_contain_text("over S3's 5 TiB object limit")
    page.wait_for_timeout(300)
    assert traffic.server_requests == before and not traffic.parts
