"""`ncaas-dev import`: every fixture written from the issue becomes a blueprint that loads, or
a clear exit-2 naming the field; the output folder is never half written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ncaas_dev.blueprint import load_blueprint
from ncaas_dev.compat import importer
from ncaas_dev.compat.importer import TemplateError, convert, import_template
from ncaas_dev.errors import UsageError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "neurocaas"
NCAAS_DEV = Path(sys.executable).parent / "ncaas-dev"


def template(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return doc


def imported(name: str, tmp_path: Path) -> tuple[Path, importer.Imported]:
    return import_template(FIXTURES / f"{name}.json", tmp_path / name)


def test_every_field_is_mapped_and_the_blueprint_loads(tmp_path: Path) -> None:
    folder, result = imported("every_field", tmp_path)
    bp = load_blueprint(folder).blueprint
    assert bp.analysis == "dlc-ensemble" and bp.compat == "neurocaas"
    assert bp.cloud.region == "us-east-1" and bp.cloud.instance_type == "m5.xlarge"
    assert bp.limits.max_concurrent_jobs == 20 and bp.limits.max_cost_usd == 450
    assert bp.run.timeout == 172000
    assert [(g.name, g.users) for g in bp.groups] == [
        ("cunninghamlab", ["alice", "bob"]),
        ("paninski-lab", ["carol"]),
    ]
    sources = {row.source for row in result.rows}
    config = "Lambda.LambdaConfig."
    for field in ("AMI", "INSTANCE_TYPE", "COMMAND", "DEPLOY_LIMIT", "MAXCOST", "SSM_TIMEOUT",
                  "EXECUTION_TIMEOUT", "CONFIG", "MISSING_CONFIG_ERROR"):  # fmt: skip
        assert config + field in sources, field
    not_carried = {row.source: row.note for row in result.rows if not row.target}
    assert "AMI" in not_carried[config + "AMI"] and not_carried[config + "EXECUTION_TIMEOUT"]
    command = template("every_field")["Lambda"]["LambdaConfig"]["COMMAND"]
    assert command in (folder / "README.md").read_text()
    assert f"#   {command}" in (folder / "blueprint.yaml").read_text()
    assert "pi@cunninghamlab.org" in (folder / "README.md").read_text()
    assert (folder / "Dockerfile").read_text().count("FROM ncaas/base") == 1
    rewritten = [r for r in result.rows if r.source.endswith("[1].AffiliateName")]
    assert (
        rewritten[0].target == "groups[1].name: paninski-lab" and "rewritten" in rewritten[0].note
    )


def test_missing_uxdata_gives_one_default_group(tmp_path: Path) -> None:
    folder, result = imported("missing_uxdata", tmp_path)
    bp = load_blueprint(folder).blueprint
    assert [(g.name, g.users) for g in bp.groups] == [("default", [])]
    assert any(
        r.source == "UXData.Affiliates" and "list the real ones" in r.note for r in result.rows
    )


def test_email_user_names_get_the_documented_mapping(tmp_path: Path) -> None:
    folder, result = imported("email_users", tmp_path)
    (group,) = load_blueprint(folder).blueprint.groups
    assert group.name == "Lab-Columbia"
    assert group.users == [
        "alice.smith-at-columbia.edu",
        "bob-at-columbia.edu",
        "bob-at-cornell.edu",
    ]
    shown = {r.value: r.target for r in result.rows if "UserNames[" in r.source}
    assert shown["bob@cornell.edu"] == "groups[0].users: bob-at-cornell.edu"


def test_a_string_maxcost_is_read_as_a_number(tmp_path: Path) -> None:
    folder, result = imported("string_maxcost", tmp_path)
    bp = load_blueprint(folder).blueprint
    assert bp.limits.max_cost_usd == 300
    assert any("written as text" in r.note for r in result.rows if r.source.endswith("MAXCOST"))
    # p2 GPUs are retired: the mapping picks a current GPU type and turns the GPU on.
    assert bp.cloud.instance_type == "g4dn.xlarge" and bp.resources.gpu is True
    assert bp.cloud.region == "us-east-2"


def test_an_unknown_instance_type_exits_2_naming_the_field(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(NCAAS_DEV), "import", str(FIXTURES / "unknown_instance_type.json"),
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True, check=False, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 2
    assert "field 'Lambda.LambdaConfig.INSTANCE_TYPE'" in done.stderr and "supersize" in done.stderr
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []


def test_a_well_formed_type_without_a_price_is_carried_with_a_warning() -> None:
    doc = template("every_field")
    doc["Lambda"]["LambdaConfig"]["INSTANCE_TYPE"] = "zz9.plural"
    result = convert(doc)
    (row,) = [r for r in result.rows if r.source.endswith("INSTANCE_TYPE")]
    assert row.target == "cloud.instance_type: zz9.plural" and "no price" in row.note


def _set(doc: dict[str, Any], path: str, value: object) -> None:
    *parents, last = path.split(".")
    for part in parents:
        doc = doc[part]
    doc[last] = value


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        ("Lambda.LambdaConfig.MAXCOST", "lots", "Lambda.LambdaConfig.MAXCOST"),
        ("Lambda.LambdaConfig.MAXCOST", -1, "Lambda.LambdaConfig.MAXCOST"),
        ("Lambda.LambdaConfig.DEPLOY_LIMIT", "4", "Lambda.LambdaConfig.DEPLOY_LIMIT"),
        ("Lambda.LambdaConfig.DEPLOY_LIMIT", True, "Lambda.LambdaConfig.DEPLOY_LIMIT"),
        ("Lambda.LambdaConfig.SSM_TIMEOUT", [], "Lambda.LambdaConfig.SSM_TIMEOUT"),
        ("Lambda.LambdaConfig.COMMAND", 7, "Lambda.LambdaConfig.COMMAND"),
        ("Lambda.LambdaConfig", "x", "Lambda.LambdaConfig"),
        ("PipelineName", 12, "PipelineName"),
        ("UXData.Affiliates", {}, "UXData.Affiliates"),
    ],
)
def test_a_wrong_type_exits_2_naming_the_field(path: str, value: object, named: str) -> None:
    doc = template("every_field")
    _set(doc, path, value)
    with pytest.raises(TemplateError) as caught:
        convert(doc)
    assert f"field '{named}'" in caught.value.message and caught.value.exit_code == 2


def test_affiliate_fields_are_named_with_their_index() -> None:
    doc = template("every_field")
    del doc["UXData"]["Affiliates"][1]["AffiliateName"]
    with pytest.raises(TemplateError, match=r"'UXData.Affiliates\[1\].AffiliateName' is missing"):
        convert(doc)
    doc = template("every_field")
    doc["UXData"]["Affiliates"][0]["UserNames"] = ["ok", 5]
    with pytest.raises(TemplateError, match=r"UXData.Affiliates\[0\].UserNames\[1\]"):
        convert(doc)


@pytest.mark.parametrize("body", [b"[1, 2]", b"not json", b'{"Lambda": {}}', b"{}"])
def test_a_file_that_is_not_a_template_exits_2(tmp_path: Path, body: bytes) -> None:
    path = tmp_path / "stack_config_template.json"
    path.write_bytes(body)
    with pytest.raises(TemplateError) as caught:
        import_template(path, tmp_path / "out")
    assert caught.value.exit_code == 2 and str(path) in caught.value.message
    assert not (tmp_path / "out").exists()


def test_the_folder_is_never_half_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_readme(_: object) -> str:
        raise OSError("disk full")

    monkeypatch.setattr(importer.templates, "readme", broken_readme)
    with pytest.raises(OSError, match="disk full"):
        imported("every_field", tmp_path)
    assert list(tmp_path.iterdir()) == []  # neither the folder nor the scratch beside it


def test_an_existing_folder_is_left_alone(tmp_path: Path) -> None:
    out = tmp_path / "every_field"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(UsageError, match="already exists"):
        imported("every_field", tmp_path)
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    (out / "mine.txt").unlink()  # an empty folder is filled
    folder, _ = imported("every_field", tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["Dockerfile", "README.md", "blueprint.yaml"]
