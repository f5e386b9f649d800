"""docs/python-api.md runs as written: its Python cells, in order, in one namespace, from a
folder laid out like the repository's root (a copy of the example blueprint), against the
session's stack."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
from pathlib import Path

import pytest

from ncaas_dev.settings import Settings

from .api_env import point_at
from .jobs import ROOT, SESSION_ANALYSES

pytestmark = pytest.mark.integration
DOC = ROOT / "docs" / "python-api.md"


def cells(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def test_the_python_api_doc_runs_as_written(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    point_at(monkeypatch, settings)
    shutil.copytree(ROOT / "blueprints" / "spike-detect", tmp_path / "blueprints" / "spike-detect")
    SESSION_ANALYSES.add("spike-detect")  # its image goes with the session's, if it made it
    monkeypatch.chdir(tmp_path)
    found = cells(DOC.read_text())
    assert len(found) >= 10
    namespace: dict[str, object] = {"__name__": "__doc__"}
    out = io.StringIO()
    for number, cell in enumerate(found, 1):
        with contextlib.redirect_stdout(out):
            try:
                exec(compile(cell, f"{DOC.name} cell {number}", "exec"), namespace)
            except Exception as e:  # name the cell in the failure
                raise AssertionError(f"cell {number} failed: {e!r}\n{out.getvalue()}") from e
    shown = out.getvalue()
    assert "succeeded" in shown and "spikes" in shown
    assert "UsageError | demo/no-such-file.bin: no such file" in shown
    assert "0 ok" in shown  # the shell cell's exit code and the file it wrote
    assert "USD per dataset" in shown
