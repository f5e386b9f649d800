"""`ncaas-dev init`: a blueprint folder that loads as it is."""

from __future__ import annotations

from pathlib import Path

import pytest

from ncaas_dev.blueprint import load_blueprint
from ncaas_dev.errors import UsageError
from ncaas_dev.scaffold import scaffold


def test_scaffold_creates_a_loadable_blueprint(tmp_path: Path) -> None:
    folder = scaffold(tmp_path / "my-analysis")
    assert folder == tmp_path / "my-analysis"
    assert {p.name for p in folder.iterdir()} == {
        "blueprint.yaml",
        "Dockerfile",
        "main.py",
        "README.md",
    }
    bp = load_blueprint(folder).blueprint
    assert bp.analysis == "my-analysis"
    assert bp.run.command == ["python3", "/app/main.py"]
    assert [g.name for g in bp.groups] == ["labA"]
    assert "COPY main.py /app/main.py" in (folder / "Dockerfile").read_text()
    compile((folder / "main.py").read_text(), "main.py", "exec")
    assert "NCAAS_DATA" in (folder / "main.py").read_text()
    assert f"ncaas-dev run {folder} --data" in (folder / "README.md").read_text()


def test_folder_name_is_made_bucket_safe(tmp_path: Path) -> None:
    folder = scaffold(tmp_path / "My_Spike Sorter")
    assert load_blueprint(folder).blueprint.analysis == "my-spike-sorter"


def test_an_existing_empty_folder_is_fine(tmp_path: Path) -> None:
    (tmp_path / "pose-tracker").mkdir()
    assert load_blueprint(scaffold(tmp_path / "pose-tracker")).blueprint.analysis == "pose-tracker"


@pytest.mark.parametrize("name", ["ab", "x", "__", "--", "a" * 64, "...", "é"])
def test_names_that_cannot_be_a_bucket_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(UsageError) as caught:
        scaffold(tmp_path / name)
    assert "cannot name an analysis" in caught.value.message
    assert caught.value.exit_code == 2
    assert not (tmp_path / name).exists()


def test_non_empty_folder_is_refused_and_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "my-analysis"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="already exists and is not empty") as caught:
        scaffold(target)
    assert caught.value.exit_code == 2
    assert [p.name for p in target.iterdir()] == ["notes.txt"]


def test_existing_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "my-analysis"
    target.write_text("not a folder")
    with pytest.raises(UsageError):
        scaffold(target)
