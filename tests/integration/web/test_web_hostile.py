"""The web client against one signed-in user's hostile input, and the analysis's own progress:
bad parameters are 400s, a hostile config stalls nobody, a log cannot forge SSE fields, live
streams per session are bounded, and a tqdm bar shows as a progress bar and one clean line."""

from __future__ import annotations

import http.client
import re
import time
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect
from sse import parse_sse  # tests/ is on sys.path: pytest's rootdir conftest

from integration.jobs import Lab
from ncaas_dev.api.logs import render_log
from ncaas_dev.blueprint import LoadedBlueprint
from ncaas_dev.storage import Storage
from ncaas_dev.web.params import MAX_STREAMS

from .conftest import SignIn, Web, screenshot

pytestmark = pytest.mark.integration


def _form_post(page: Page, url: str, form: dict[str, str]) -> tuple[int, str]:
    reply = page.evaluate(
        """async ([url, form]) => {
            const csrf = document.querySelector('meta[name=csrf-token]').content;
            const r = await fetch(url, {method: 'POST', body: new URLSearchParams(form),
                headers: {'X-CSRF-Token': csrf}});
            return [r.status, await r.text()];
        }""",
        [url, form],
    )
    return int(reply[0]), str(reply[1])


def test_bad_parameters_answer_400_with_a_reason(
    web: Web, sign_in: SignIn, probe: LoadedBlueprint, storage: Storage
) -> None:
    bucket = probe.blueprint.analysis
    lab = Lab(storage, bucket, "labA")
    job = lab.wait_job(lab.submit(dataname=lab.dataset()))
    lab.wait_end(job)
    dataset = next(iter(lab.client.status("labA", job).datasets))
    page = sign_in("labA", "alice")
    for query in ("page=abc", "page=%C2%B2", "page=0", "page=-1"):
        reply = page.request.get(f"{web.url}/a/{bucket}/jobs?{query}")
        assert reply.status == 400 and "page must be" in reply.text(), (query, reply.status)
    logs = f"{web.url}/a/{bucket}/jobs/{job}/logs/{dataset}"
    for header in ("²", "abc", "-5"):
        reply = page.request.get(logs, headers={"Last-Event-ID": header})
        assert reply.status == 400 and "Last-Event-ID must be" in reply.text(), header
    assert page.request.get(logs, headers={"Last-Event-ID": "0"}).status == 200


def test_hostile_config_gets_a_clean_answer_and_stalls_nobody(
    web: Web, sign_in: SignIn, probe: LoadedBlueprint, storage: Storage
) -> None:
    bucket = probe.blueprint.analysis
    lab = Lab(storage, bucket, "labA")
    # Nearly 1 MiB: a long flat part (libyaml needs a second or two for it), then deep nesting.
    body = b"a: 1\n" * 190_000 + b"b: " + b"[" * 50_000
    config = lab.put("configs", "hostile.yaml", body)
    data = lab.dataset()
    page = sign_in("labA", "alice")
    page.goto(f"{web.url}/a/{bucket}")
    result = page.evaluate(
        """async ([validate, submit, config, data]) => {
            const csrf = document.querySelector('meta[name=csrf-token]').content;
            const post = (url, form) => fetch(url, {method: 'POST', headers: {'X-CSRF-Token': csrf},
                body: new URLSearchParams(form)});
            const checking = post(validate, {config});
            const submitting = post(submit, {config, data});
            let slowest = 0, answered = 0, pending = true;
            Promise.all([checking, submitting]).then(() => { pending = false; });
            while (pending || answered < 3) {  // GET / meanwhile, and at least 3 times
                const t = performance.now();
                await fetch('/');
                slowest = Math.max(slowest, performance.now() - t);
                answered += 1;
            }
            const [v, s] = await Promise.all([checking, submitting]);
            return [v.status, await v.text(), s.status, await s.text(), slowest, answered];
        }""",
        [f"/a/{bucket}/validate", f"/a/{bucket}/submit", config, data],
    )
    v_status, v_text, s_status, s_text, slowest, answered = result
    assert v_status == 200 and "nest" in v_text and "config OK" not in v_text, v_text
    assert s_status == 400 and "hostile.yaml" in s_text and "nest" in s_text
    assert slowest < 1000, f"GET / took {slowest:.0f} ms while a config was checked"
    print(f"GET / answered {answered} times, slowest {slowest:.0f} ms, meanwhile")


def test_a_log_cannot_forge_or_cut_the_event_stream(
    web: Web, sign_in: SignIn, probe: LoadedBlueprint, storage: Storage
) -> None:
    bucket = probe.blueprint.analysis
    lab = Lab(storage, bucket, "labA")
    raw = "x\rid: 0\r\revent: end\r\rdata: spoof\r\nretry: 1\rafter\n"
    data = lab.dataset()
    job = lab.wait_job(lab.submit(dataname=data, configname=lab.config(lines=2, raw=raw)))
    lab.wait_end(job)
    dataset = data.rsplit("/", 1)[1]
    page = sign_in("labA", "alice")
    stream = page.request.get(f"{web.url}/a/{bucket}/jobs/{job}/logs/{dataset}").text()
    events = parse_sse(stream)
    assert [e.get("event") for e in events][-1] == "end"
    assert {e.get("event") for e in events} <= {"log", "partial", "end", None}
    assert [e for e in events if e.get("event") == "end"] == events[-1:]
    logged = lab.storage.get_bytes(bucket, lab.paths(job).log(dataset))[0]
    ids = [int(e["id"]) for e in events if "id" in e]
    assert ids == sorted(ids) and ids[-1] == len(logged)
    assert {e.get("retry") for e in events} <= {"1000", None}  # only the server's own
    lines = "\n".join(e["data"] for e in events if e.get("event") == "log").split("\n")
    # A terminal shows "data: spoof" (each CR rewrote the line) and "after: 1"; so does the page.
    assert lines == render_log(logged) and lines[:3] == ["data: spoof", "after: 1", "line 0"]


def test_live_streams_per_session_are_bounded(
    web: Web, sign_in: SignIn, probe: LoadedBlueprint, storage: Storage
) -> None:
    bucket = probe.blueprint.analysis
    lab = Lab(storage, bucket, "labA")
    job = lab.wait_job(lab.submit(dataname=lab.dataset(), configname=lab.config(sleep=40)))
    page = sign_in("labA", "alice")
    cookie = "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies())
    where = urlsplit(web.url)

    def open_stream(cookie: str = cookie) -> tuple[http.client.HTTPConnection, int]:
        conn = http.client.HTTPConnection(where.hostname or "", where.port, timeout=30)
        conn.request("GET", f"/a/{bucket}/jobs/{job}/events", headers={"Cookie": cookie})
        return conn, conn.getresponse().status

    held = [open_stream() for _ in range(MAX_STREAMS)]
    try:
        assert [status for _, status in held] == [200] * MAX_STREAMS
        extra, status = open_stream()
        extra.close()
        assert status == 429
        other = sign_in("labA", "alice").context.cookies()  # another session: not affected
        conn, status = open_stream("; ".join(f"{c['name']}={c['value']}" for c in other))
        conn.close()
        assert status == 200
    finally:
        for conn, _ in held:
            conn.close()
    deadline = time.monotonic() + 10  # closed streams give their slots back
    while True:
        again, status = open_stream()
        again.close()
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == 200


def test_progress_bar_and_clean_log_in_the_browser(
    web: Web, sign_in: SignIn, probe: LoadedBlueprint, storage: Storage
) -> None:
    bucket = probe.blueprint.analysis
    lab = Lab(storage, bucket, "labA")
    steps = 20
    final = f"100%|##########| {steps}/{steps}"
    data = lab.dataset()
    config = lab.config(lines=1, bars=steps, bar_interval=0.5)
    job = lab.wait_job(lab.submit(dataname=data, configname=config))
    page = sign_in("labA", "alice")
    page.goto(f"{web.url}/a/{bucket}/jobs/{job}")
    page.wait_for_function(
        """() => { const p = document.querySelector('#datasets progress');
                   return p && !p.hidden && p.value > 0 && p.value < 1; }""",
        timeout=60_000,
    )
    screenshot(page, "job-progress")
    expect(page.locator("#job-state")).to_have_text("succeeded", timeout=60_000)
    expect(page.locator("#datasets .pct")).to_have_text("100%", timeout=10_000)
    log = page.locator("pre.log").first
    expect(log).to_contain_text(final, timeout=10_000)
    bars = [line for line in log.inner_text().splitlines() if "%|" in line]
    assert len(bars) == 1 and bars[0].startswith(final), bars
    expect(page.locator("#certificate")).to_contain_text(f"LAST OUTPUT: {final}")


def test_hardening_headers_no_inline_script_and_csrf_never_in_a_query(
    web: Web, sign_in: SignIn, probe: LoadedBlueprint, storage: Storage
) -> None:
    bucket = probe.blueprint.analysis
    lab = Lab(storage, bucket, "labA")
    job = lab.wait_job(lab.submit(dataname=lab.dataset()))
    lab.wait_end(job)
    page = sign_in("labA", "alice")
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text))
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    for path in ("/", f"/a/{bucket}", f"/a/{bucket}/jobs", f"/a/{bucket}/jobs/{job}"):
        reply = page.request.get(web.url + path)
        headers = reply.headers
        policy = headers["content-security-policy"]
        assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy, path
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["cache-control"] == "no-store", path
        page.goto(web.url + path)
        html = page.content()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path  # inline script
        assert not re.search(r"\son[a-z]+=", html), path  # inline handler
    expect(page.locator("#tree")).to_contain_text("facts.json")  # htmx still works
    page.goto(f"{web.url}/a/{bucket}")
    with page.expect_request(re.compile(r".*/files\b.*")) as refreshed:
        page.evaluate("htmx.trigger(document.body, 'uploaded')")
    assert "csrf" not in refreshed.value.url.lower()
    assert all("csrf" not in url.lower() for url in urls), [u for u in urls if "csrf" in u]
    assert [m for m in console if "Content Security" in m] == []
    static = page.request.get(f"{web.url}/static/app.js").headers
    assert static.get("cache-control") != "no-store"


def test_sign_out_revokes_the_session_cookie(
    web: Web, sign_in: SignIn, browser: Browser, probe: LoadedBlueprint
) -> None:
    bucket = probe.blueprint.analysis
    page = sign_in("labA", "alice")
    copied = page.context.cookies()
    thief = browser.new_context()
    thief.add_cookies(copied)  # type: ignore[arg-type]
    assert thief.request.get(f"{web.url}/a/{bucket}/jobs", max_redirects=0).status == 200
    page.click("header form button[type=submit]")  # Sign out
    page.wait_for_url(re.compile(r".*/signin"))
    replay = thief.request.get(f"{web.url}/a/{bucket}/jobs", max_redirects=0)
    assert replay.status == 303 and "/signin" in replay.headers["location"]
    thief.close()
