"""The web client in a real browser: sign-in, group isolation, submit and watch a job live."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from integration.jobs import Lab
from ncaas_dev.blueprint import LoadedBlueprint
from ncaas_dev.storage import Storage

from .conftest import SignIn, Web, screenshot

pytestmark = pytest.mark.integration


def _post(page: Page, url: str, body: dict[str, object]) -> tuple[int, str]:
    """A JSON POST from inside the page, with its session cookie and CSRF token."""
    reply = page.evaluate(
        """async ([url, body]) => {
            const csrf = document.querySelector('meta[name=csrf-token]').content;
            const r = await fetch(url, {method: 'POST', body: JSON.stringify(body),
                headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf}});
            return [r.status, await r.text()];
        }""",
        [url, body],
    )
    return int(reply[0]), str(reply[1])


def test_sign_in_token_works_once_and_keeps_the_page(
    web: Web, browser: object, sign_in: SignIn
) -> None:
    page = sign_in("labA", "alice")
    screenshot(page, "analyses")
    used = page.context.browser.new_context()  # type: ignore[union-attr]
    try:
        other = used.new_page()
        link = web.signin_link()
        other.goto(link)
        other.goto(f"{web.url}/signin")  # nothing chosen yet: the link is spent anyway
        again = used.browser.new_context().new_page()  # type: ignore[union-attr]
        response = again.goto(link)
        assert response is not None and response.status == 401
        expect(again.locator("text=already used")).to_be_visible()
        # No session: a page sends you to sign-in, which brings you back to that page.
        fresh = used.browser.new_context().new_page()  # type: ignore[union-attr]
        fresh.goto(f"{web.url}/a/anything/jobs?page=2")
        assert "/signin?next=" in fresh.url and "page%3D2" in fresh.url
        fresh.goto(web.signin_link("/a/anything/jobs?page=2"))
        fresh.click("form.choice button[value='alice']")
        fresh.wait_for_url(re.compile(r".*/a/anything/jobs\?page=2$"))
        expect(fresh.locator("#error")).to_contain_text("nothing here for your group")
    finally:
        used.close()


def test_cookie_is_httponly_lax_and_posts_need_csrf(
    web: Web, sign_in: SignIn, probe: LoadedBlueprint
) -> None:
    page = sign_in("labA", "alice")
    cookie = next(c for c in page.context.cookies() if c["name"] == "ncaas_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    bucket = probe.blueprint.analysis
    reply = page.evaluate(
        """async (url) => (await fetch(url, {method: 'POST', body: 'data=x',
            headers: {'Content-Type': 'application/x-www-form-urlencoded'}})).status""",
        f"/a/{bucket}/submit",
    )
    assert reply == 403


def test_group_isolation(
    web: Web, sign_in: SignIn, probe: LoadedBlueprint, storage: Storage
) -> None:
    bucket = probe.blueprint.analysis
    lab_b = Lab(storage, bucket, "labB")
    b_job = lab_b.wait_job(lab_b.submit(dataname=lab_b.dataset()))
    lab_b.wait_end(b_job)
    page = sign_in("labA", "alice")
    page.goto(f"{web.url}/a/{bucket}/jobs")
    expect(page.locator("#history")).not_to_contain_text(b_job)
    for path in (
        f"/a/{bucket}/jobs/{b_job}",
        f"/a/{bucket}/jobs/{b_job}/events",
        f"/a/{bucket}/jobs/{b_job}/logs/x.bin",
        f"/a/{bucket}/jobs/{b_job}/results",
        f"/a/{bucket}/jobs/{b_job}/file?path=logs/status.json",
    ):
        response = page.request.get(web.url + path)
        assert response.status == 404, path
    api = f"/api/a/{bucket}/uploads"
    outside = [
        {"folder": "inputs", "name": "../../labB/inputs/x.bin", "size": 1},
        {"folder": "inputs", "name": "a%2Fb.bin", "size": 1},
        {"folder": "submissions", "name": "x_submit.json", "size": 1},
        {"folder": "results", "name": "x", "size": 1},
    ]
    for body in outside:
        assert _post(page, api, body)[0] == 403, body
    for key in (
        "labB/inputs/x.bin",
        "/labA/inputs/x.bin",
        ".ncaas/blueprint.json",
        "labA/inputs/../../labB/inputs/x",
        "labA/submissions/x_submit.json",
        "s3://labA/inputs/x",
    ):
        status, _ = _post(page, f"{api}/sign", {"key": key, "upload_id": "u", "parts": [1]})
        assert status == 403, key
    # B signed in sees its own job.
    page_b = sign_in("labB", "carol")
    page_b.goto(f"{web.url}/a/{bucket}/jobs/{b_job}")
    expect(page_b.locator("#job-state")).to_have_text("succeeded")


def test_no_credentials_in_served_pages(
    web: Web, sign_in: SignIn, probe: LoadedBlueprint, storage: Storage
) -> None:
    bucket = probe.blueprint.analysis
    lab = Lab(storage, bucket, "labA")
    job = lab.wait_job(lab.submit(dataname=lab.dataset()))
    lab.wait_end(job)
    page = sign_in("labA", "alice")
    bodies: list[str] = []
    page.on(
        "response",
        lambda r: (
            bodies.append(r.text())
            if r.url.startswith(web.url)
            and r.request.resource_type in ("document", "script", "stylesheet", "xhr", "fetch")
            and r.status == 200
            and "event-stream" not in r.headers.get("content-type", "")
            else None
        ),
    )
    for path in ("/", f"/a/{bucket}", f"/a/{bucket}/jobs", f"/a/{bucket}/jobs/{job}"):
        page.goto(web.url + path)
        page.wait_for_load_state("networkidle")
    assert len(bodies) >= 6
    # Locally the keys are LocalStack's "test"/"test"; what must never appear is any signed
    # request, key id shape or secret field.
    pattern = re.compile(r"X-Amz-|AKIA[0-9A-Z]{12}|ASIA[0-9A-Z]{12}|SecretAccessKey|SessionToken")
    for body in bodies:
        assert not pattern.search(body), "a credential was served"


def _upload(page: Page, folder: str, path: Path) -> None:
    page.set_input_files(f"#pick-{folder}", str(path))
    row = page.locator(f"#uploads li[data-name='{path.name}']")
    expect(row.locator(".status")).to_have_text("uploaded", timeout=60_000)


def test_submit_and_watch_a_job_live(
    web: Web, sign_in: SignIn, probe: LoadedBlueprint, tmp_path: Path
) -> None:
    """Upload, validate, submit; state changes and a printed line arrive without a reload."""
    bucket = probe.blueprint.analysis
    data = tmp_path / "rec-live.bin"
    data.write_bytes(b"x" * 5000)
    config = tmp_path / "slow.json"
    config.write_text(json.dumps({"lines": 4, "line_interval": 2.5}))
    bad = tmp_path / "bad.json"
    bad.write_text('{"lines": 3,\n "sleep": }\n')
    page = sign_in("labA", "alice")
    page.goto(f"{web.url}/a/{bucket}")
    for f in (config, bad):
        _upload(page, "configs", f)
    _upload(page, "inputs", data)
    expect(page.locator(f"input[name=data][value='labA/inputs/{data.name}']")).to_be_visible()
    page.check(f"input[name=config][value='labA/configs/{bad.name}']")
    expect(page.locator("#validation-result")).to_have_text(re.compile(r"line 2, column \d+: "))
    screenshot(page, "analysis")
    page.check(f"input[name=config][value='labA/configs/{config.name}']")
    expect(page.locator("#validation-result")).to_have_text("config OK")
    page.check(f"input[name=data][value='labA/inputs/{data.name}']")
    clicked = time.monotonic()
    page.click("#submit")
    page.wait_for_url(re.compile(r".*/jobs/job_[^/]+$"), timeout=30_000)
    expect(page.locator("#job-state")).to_have_text("running", timeout=30_000)
    to_running = time.monotonic() - clicked
    log = page.locator("pre.log").first
    expect(log).to_contain_text("line 0", timeout=30_000)
    seen_at = time.monotonic()
    # The analysis prints "line 1" 2.5 s after "line 0": it must show within 2 s of being written.
    expect(log).to_contain_text("line 1", timeout=30_000)
    gap = time.monotonic() - seen_at
    assert gap < 2.5 + 2.0, f"line 1 appeared {gap:.1f} s after line 0"
    screenshot(page, "job-running")
    expect(page.locator("#job-state")).to_have_text("succeeded", timeout=60_000)
    text = log.inner_text()
    assert [line for line in text.splitlines() if line.startswith("line")] == [
        "line 0",
        "line 1",
        "line 2",
        "line 3",
    ]
    expect(page.locator("#tree")).to_contain_text("facts.json")
    print(f"submit -> running shown: {to_running:.2f} s")


def test_rejected_submission_shows_its_reason(
    web: Web, sign_in: SignIn, probe: LoadedBlueprint, storage: Storage
) -> None:
    bucket = probe.blueprint.analysis
    lab = Lab(storage, bucket, "labA")
    lab.put("inputs", "gone.bin", b"1")
    page = sign_in("labA", "alice")
    page.goto(f"{web.url}/a/{bucket}?data=labA/inputs/gone.bin")
    storage.delete(bucket, "labA/inputs/gone.bin")  # picked, then deleted: a bad input
    started = time.monotonic()
    page.click("#submit")
    expect(page.locator("#reason")).to_contain_text("gone.bin", timeout=5_000)
    elapsed = time.monotonic() - started
    expect(page.locator("#job-state")).to_have_text("rejected")
    screenshot(page, "job-rejected")
    assert elapsed < 5.0


def _events(body: str) -> list[tuple[str, int | None, str]]:
    """(event, id, data) of each SSE event in ``body``."""
    found = []
    for block in body.split("\n\n"):
        name, ident, data = "message", None, []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("id: "):
                ident = int(line[4:])
            elif line.startswith("data: "):
                data.append(line[6:])
        if data or ident is not None:
            found.append((name, ident, "\n".join(data)))
    return found


def test_log_stream_resumes_at_last_event_id(
    web: Web, sign_in: SignIn, probe: LoadedBlueprint, storage: Storage
) -> None:
    """A reconnect with Last-Event-ID gets exactly the lines after it: none twice, none lost."""
    bucket = probe.blueprint.analysis
    lab = Lab(storage, bucket, "labA")
    data = lab.dataset()
    page = sign_in("labA", "alice")
    config = lab.config(lines=40, line_interval=0.1)  # 4 s of output: several log events
    job = lab.wait_job(lab.submit(dataname=data, configname=config))
    dataset = data.rsplit("/", 1)[1]
    url = f"{web.url}/a/{bucket}/jobs/{job}/logs/{dataset}"
    whole = _events(page.request.get(url, timeout=120_000).text())  # live, until the job ends
    lines = [line for name, _, text in whole if name == "log" for line in text.split("\n")]
    expected = lab.text(lab.paths(job).log(dataset)).rstrip("\n").split("\n")
    assert lines == expected and "line 39" in lines
    log_events = [e for e in whole if e[0] == "log"]
    assert len(log_events) >= 2, log_events
    # Resume from every event's id: what follows, joined to what came before, is the log.
    for index, (_, ident, _) in enumerate(log_events):
        resumed = _events(page.request.get(url, headers={"Last-Event-ID": str(ident)}).text())
        before = [ln for _, _, text in log_events[: index + 1] for ln in text.split("\n")]
        after = [ln for name, _, text in resumed if name == "log" for ln in text.split("\n")]
        assert before + after == expected
        assert resumed[-1][0] == "end"
