"""A folder picked in the browser uploads as one dataset, its tree intact, and runs as one."""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path

import pytest
from playwright.sync_api import expect

from integration.jobs import Lab
from ncaas_dev.blueprint import LoadedBlueprint
from ncaas_dev.storage import Storage

from .conftest import SignIn, Web, screenshot

pytestmark = pytest.mark.integration


def test_a_folder_from_the_browser_runs_as_one_dataset(
    web: Web, sign_in: SignIn, probe: LoadedBlueprint, storage: Storage, tmp_path: Path
) -> None:
    bucket = probe.blueprint.analysis
    name = f"scan-{secrets.token_hex(3)}"
    tree = {
        "a.bin": os.urandom(1000),
        "day1/b.bin": os.urandom(9 * 1024**2),  # two parts: the same multipart path as files
        "day1/deep/c.txt": b"hello\n",
    }
    for relative, body in tree.items():
        path = tmp_path / name / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    page = sign_in("labA", "alice")
    page.goto(f"{web.url}/a/{bucket}")
    page.set_input_files("#pick-folder", str(tmp_path / name))
    for relative in tree:
        row = page.locator(f"#uploads li[data-name='{name}/{relative}'] .status")
        expect(row).to_have_text("uploaded", timeout=60_000)
    box = page.locator(f"input[name=data][value='labA/inputs/{name}/']")
    expect(box).to_be_visible(timeout=10_000)
    expect(page.locator("label.file", has=box)).to_contain_text("folder of 3 files")
    screenshot(page, "folder-uploaded")
    box.check()
    page.click("#submit")
    page.wait_for_url(re.compile(r".*/jobs/job_[^/]+$"), timeout=30_000)
    job = page.url.rsplit("/", 1)[1]
    lab = Lab(storage, bucket, "labA")
    status = lab.wait_end(job)
    assert list(status.datasets) == [name] and status.state == "succeeded", status.reason
    facts = json.loads(lab.text(lab.paths(job).outputs(name) + "facts.json"))
    assert facts["files"] == sorted(tree)  # the analysis saw the whole tree, sub-paths kept
    for relative, body in tree.items():
        assert storage.get_bytes(bucket, f"labA/inputs/{name}/{relative}")[0] == body
