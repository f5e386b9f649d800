"""Helpers shared by the unit tests: blueprint folders on disk and dataset tasks in memory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ncaas_dev.analysis import AnalysisRecord
from ncaas_dev.blueprint import Blueprint
from ncaas_dev.launchers.base import DatasetTask

MINIMAL = "analysis: my-analysis\ngroups:\n  - name: labA\n"

WriteBlueprint = Callable[..., Path]
MakeTask = Callable[..., DatasetTask]


@pytest.fixture
def write_blueprint(tmp_path: Path) -> WriteBlueprint:
    """Write ``text`` as ``<folder>/blueprint.yaml`` (plus a Dockerfile) and return the folder."""

    def write(text: str = MINIMAL, *, dockerfile: bool = True, name: str = "bp") -> Path:
        folder = tmp_path / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "blueprint.yaml").write_text(text)
        if dockerfile:
            (folder / "Dockerfile").write_text("FROM ncaas/base:bookworm\n")
        return folder

    return write


def _make_task(
    *,
    run: dict[str, Any] | None = None,
    resources: dict[str, Any] | None = None,
    config_key: str | None = None,
    dataset: str = "rec1.bin",
) -> DatasetTask:
    blueprint = Blueprint.model_validate(
        {
            "analysis": "spike-detect",
            "groups": [{"name": "labA"}],
            "run": run or {},
            "resources": resources or {},
        }
    )
    record = AnalysisRecord(
        blueprint=blueprint, content_hash="0" * 64, image=blueprint.image_tag, image_id=None
    )
    return DatasetTask(
        bucket="spike-detect",
        group="labA",
        job="job_20261124T203000Z",
        dataset=dataset,
        data_key=f"labA/inputs/{dataset}",
        config_key=config_key,
        record=record,
        endpoint_url=None,
        region="us-east-1",
    )


@pytest.fixture
def make_task() -> MakeTask:
    """Build a ``DatasetTask`` for a blueprint with the given ``run``/``resources`` sections."""
    return _make_task
