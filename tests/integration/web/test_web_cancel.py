"""The job page's Cancel button, in a real browser: it asks first, then cancels the job the
way a cancel file does; another group cannot cancel it."""

from __future__ import annotations

import pytest
from playwright.sync_api import Dialog, expect

from integration.jobs import Lab
from ncaas_dev.blueprint import LoadedBlueprint
from ncaas_dev.containers import Engine
from ncaas_dev.status import State
from ncaas_dev.storage import Storage

from ..test_cancel import STOP_BOUND_S, seconds_until_gone, wait_running
from .conftest import SignIn, Web, screenshot

pytestmark = pytest.mark.integration


def test_cancel_button_asks_then_cancels(
    web: Web, sign_in: SignIn, probe: LoadedBlueprint, storage: Storage, engine: Engine
) -> None:
    bucket = probe.blueprint.analysis
    lab = Lab(storage, bucket, "labA")
    job = lab.wait_job(lab.submit(dataname=lab.dataset(), configname=lab.config(lines=1, sleep=50)))
    wait_running(lab, engine, job)
    # Another group's user: the job is not theirs to see, nor to cancel.
    carol = sign_in("labB", "carol")
    carol.goto(f"{web.url}/a/{bucket}/jobs/{job}")
    expect(carol.locator("#cancel-job")).to_have_count(0)
    reply = carol.request.post(
        f"{web.url}/a/{bucket}/jobs/{job}/cancel",
        headers={"X-CSRF-Token": carol.locator("meta[name=csrf-token]").get_attribute("content")},
    )
    assert reply.status == 404
    page = sign_in("labA", "alice")
    page.goto(f"{web.url}/a/{bucket}/jobs/{job}")
    button = page.locator("#cancel-job")
    expect(button).to_be_visible()
    questions: list[str] = []

    def say_no(dialog: Dialog) -> None:
        questions.append(dialog.message)
        dialog.dismiss()

    def cancel_files() -> set[str]:
        return {
            o.key for o in storage.list_objects(bucket, "labA/submissions/") if "_cancel" in o.key
        }

    before = cancel_files()  # other tests' requests in the session's bucket stay out of it
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.once("dialog", say_no)
    button.click()
    assert questions and job in questions[0], questions
    # "No": the browser never sent the request (confirm() answers before htmx sends one).
    expect(button).to_be_visible()
    assert posts == [], posts
    assert cancel_files() == before
    page.once("dialog", lambda dialog: dialog.accept())
    button.click()
    expect(page.locator("#cancel-form")).to_contain_text("Cancel requested by alice")
    assert seconds_until_gone(engine, lab, job) <= STOP_BOUND_S
    expect(page.locator("#job-state")).to_have_text("cancelled", timeout=30_000)
    expect(page.locator("#datasets .ds-reason")).to_contain_text("cancelled by alice at ")
    screenshot(page, "job-cancelled")
    final = lab.wait_end(job, timeout=30)
    assert final.state == State.CANCELLED
