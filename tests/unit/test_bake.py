"""The pure parts of `bake`: the Packer variables, the bake key, the blueprint write-back."""

from __future__ import annotations

import difflib
import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from ncaas_dev import __version__
from ncaas_dev.blueprint import load_blueprint
from ncaas_dev.cloud.bake import packer
from ncaas_dev.cloud.bake.key import ami_name, bake_key, baked_manifest
from ncaas_dev.cloud.bake.payload import _publish
from ncaas_dev.cloud.bake.proof import check_report
from ncaas_dev.cloud.bake.record import with_ami, write_ami
from ncaas_dev.cloud.layout import (
    BAKE_MANIFEST,
    RUNNER_PYTHON,
    TAG_ANALYSIS,
    TAG_BAKE_KEY,
    TAG_IMAGE_ID,
    TAG_VERSION,
)
from ncaas_dev.errors import UsageError
from ncaas_dev.settings import check_cloud_environment

ROOT = Path(__file__).resolve().parents[2]
SPIKE = ROOT / "blueprints" / "spike-detect" / "blueprint.yaml"
PROBE = ROOT / "tests" / "fixtures" / "probe" / "blueprint.yaml"
WriteBlueprint = Callable[..., Path]
IMAGE = "sha256:" + "ab" * 32
NOW = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)


def _plan(folder: Path, **over: object) -> packer.BakePlan:
    blueprint = load_blueprint(folder).blueprint
    fields: dict[str, object] = {
        "analysis": blueprint.analysis,
        "region": blueprint.cloud.region,
        "instance_type": blueprint.cloud.instance_type,
        "volume_gb": blueprint.cloud.volume_gb,
        "gpu": blueprint.resources.gpu,
        "image_id": IMAGE,
        "image_tag": blueprint.image_tag,
        "archive_sha256": "cd" * 32,
        "bake_key": "ef" * 32,
        "version": __version__,
        "source": packer.source_ami(blueprint.cloud.source_ami, blueprint.resources.gpu),
        "ami_name": "ncaas-x",
        "payload_dir": Path("/w/payload"),
        "verify_report": Path("/w/verify.json"),
        "manifest": Path("/w/manifest.json"),
    }
    fields.update(over)
    return packer.BakePlan(**fields)  # type: ignore[arg-type]


# -- source AMI -------------------------------------------------------------------------------
def test_default_source_is_ubuntu_lts_from_canonical() -> None:
    source = packer.source_ami(None, gpu=False)
    assert source.image_id == ""
    assert "ubuntu-noble-24.04-amd64-server" in source.filters["name"]
    assert source.filters["architecture"] == "x86_64"
    assert source.owners == (packer.CANONICAL,)


def test_gpu_source_is_the_deep_learning_base_from_amazon() -> None:
    source = packer.source_ami(None, gpu=True)
    assert source.filters["name"].startswith("Deep Learning Base OSS Nvidia Driver GPU AMI")
    assert source.owners == ("amazon",)


@pytest.mark.parametrize(
    ("gpu", "name"), [(False, "al2023-ami-ecs-hvm-"), (True, "al2023-ami-ecs-gpu-")]
)
def test_a_batch_analysis_starts_from_the_ecs_optimized_ami(gpu: bool, name: str) -> None:
    source = packer.source_ami(None, gpu=gpu, ecs=True)
    assert source.filters["name"].startswith(name) and source.owners == ("amazon",)
    assert source.ssh_username == "ec2-user"  # Amazon Linux's login, not Ubuntu's
    assert packer.source_ami("ami-0123456789abcdef0", gpu=gpu, ecs=True).image_id  # given: kept
    assert packer.source_ami(None, gpu=gpu).ssh_username == "ubuntu"


@pytest.mark.parametrize(
    ("spec", "image_id", "name", "owners"),
    [
        ("ami-0123456789abcdef0", "ami-0123456789abcdef0", None, ()),
        ("123456789012:my-base-*", "", "my-base-*", ("123456789012",)),
        ("self:lab/base-*", "", "lab/base-*", ("self",)),
        ("ubuntu/images/*jammy*", "", "ubuntu/images/*jammy*", packer.DEFAULT_OWNERS),
    ],
)
def test_source_ami_forms(
    spec: str, image_id: str, name: str | None, owners: tuple[str, ...]
) -> None:
    source = packer.source_ami(spec, gpu=False)
    assert source.image_id == image_id
    assert source.filters.get("name") == name
    assert source.owners == owners


# -- variables --------------------------------------------------------------------------------
def test_variables_come_from_the_blueprint(write_blueprint: WriteBlueprint) -> None:
    folder = write_blueprint(
        "analysis: spikes\ngroups: [{name: labA}]\n"
        "cloud: {region: eu-west-2, instance_type: c5.2xlarge, volume_gb: 42}\n"
    )
    variables = packer.packer_variables(_plan(folder))
    assert variables["region"] == "eu-west-2"
    assert variables["instance_type"] == "c5.2xlarge"
    assert variables["volume_gb"] == 42
    assert variables["source_ami"] == ""
    assert variables["source_ami_owners"] == [packer.CANONICAL]
    assert variables["tags"] == {
        "Name": "ncaas-x",
        TAG_ANALYSIS: "spikes",
        TAG_IMAGE_ID: IMAGE,
        TAG_BAKE_KEY: "ef" * 32,
        TAG_VERSION: __version__,
    }
    env = dict(item.split("=", 1) for item in variables["provision_env"])
    assert env["NCAAS_IMAGE_TAG"] == "ncaas/spikes:latest"
    assert env["NCAAS_IMAGE_ID"] == IMAGE
    assert env["NCAAS_VENV"] + "/bin/python" == RUNNER_PYTHON
    assert env["NCAAS_BAKE_MANIFEST"] == BAKE_MANIFEST
    assert env["NCAAS_GPU"] == "false"
    assert "local_source_ami" not in variables  # a cloud bake: the template's placeholder


def test_gpu_blueprint_variables(write_blueprint: WriteBlueprint) -> None:
    folder = write_blueprint("analysis: pose\ngroups: [{name: labA}]\nresources: {gpu: true}\n")
    variables = packer.packer_variables(_plan(folder))
    assert variables["instance_type"] == "g4dn.xlarge"  # the blueprint's GPU default
    assert "Deep Learning Base" in variables["source_ami_filters"]["name"]
    assert "NCAAS_GPU=true" in variables["provision_env"]


def test_an_ami_id_source_uses_no_filter(write_blueprint: WriteBlueprint) -> None:
    folder = write_blueprint(
        "analysis: spikes\ngroups: [{name: labA}]\ncloud: {source_ami: ami-0123456789abcdef0}\n"
    )
    plan = _plan(folder, local_source_ami="ami-785db401", ec2_endpoint="http://ls:4566")
    variables = packer.packer_variables(plan)
    assert variables["source_ami"] == "ami-0123456789abcdef0"
    assert variables["source_ami_filters"] == {}
    assert variables["source_ami_owners"] == []
    assert variables["local_source_ami"] == "ami-785db401"
    assert variables["ec2_endpoint"] == "http://ls:4566"


def test_ami_name_is_valid_and_names_the_bake() -> None:
    name = ami_name("a" * 63, "f" * 64, NOW)
    assert name == f"ncaas-{'a' * 63}-ffffffffffff-20261125T093000Z"
    assert len(name) <= 128  # AWS's limit


def test_recipe_hash_follows_the_recipe(tmp_path: Path) -> None:
    shutil.copytree(packer.RECIPE_DIR, tmp_path / "ami")
    before = packer.recipe_hash(tmp_path / "ami")
    assert before == packer.recipe_hash(packer.RECIPE_DIR)
    (tmp_path / "ami" / "scripts" / "20-runner.sh").write_text("echo changed\n")
    assert packer.recipe_hash(tmp_path / "ami") != before


def test_manifest_gives_the_last_runs_ami(tmp_path: Path) -> None:
    manifest = tmp_path / "m.json"
    ebs, docker = "amazon-ebs", "docker"
    builds = [
        {"builder_type": ebs, "artifact_id": "us-east-1:ami-0aaaaaaa", "packer_run_uuid": "1"},
        {"builder_type": docker, "artifact_id": "Container", "packer_run_uuid": "2"},
        {"builder_type": ebs, "artifact_id": "eu-west-1:ami-0bbbbbbb", "packer_run_uuid": "2"},
    ]
    manifest.write_text(json.dumps({"builds": builds, "last_run_uuid": "2"}))
    assert packer.ami_from_manifest(manifest) == ("eu-west-1", "ami-0bbbbbbb")
    manifest.write_text(json.dumps({"builds": builds[:2], "last_run_uuid": "2"}))
    with pytest.raises(packer.PackerFailed, match="names no AMI"):
        packer.ami_from_manifest(manifest)
    with pytest.raises(packer.PackerFailed, match="no readable manifest"):
        packer.ami_from_manifest(tmp_path / "missing.json")


def test_missing_packer_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(packer.PackerMissing) as caught:
        packer.packer_binary()
    assert "apt-get install packer" in caught.value.message
    assert "\n" not in caught.value.message and caught.value.hint is None
    assert caught.value.exit_code == 1


def test_packer_env_sets_and_removes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "prod")
    env = packer.packer_env({"AWS_PROFILE": None, "AWS_ACCESS_KEY_ID": "test"})
    assert "AWS_PROFILE" not in env
    assert env["AWS_ACCESS_KEY_ID"] == "test"
    assert env["CHECKPOINT_DISABLE"] == "1"


# -- the bake key -----------------------------------------------------------------------------
BASE = "analysis: spikes\n# a comment\ncloud:\n  region: us-east-1\ngroups:\n  - name: labA\n"


def test_bake_key_ignores_cloud_ami_comments_and_order() -> None:
    key = bake_key(IMAGE, BASE, "0.1.0", "r")
    with_ami_text = BASE.replace("region: us-east-1", "region: us-east-1\n  ami: ami-0abc1234")
    reordered = "groups:\n- name: labA\ncloud: {region: us-east-1}\nanalysis: spikes\n"
    defaults_only = "analysis: spikes\ngroups: [{name: labA}]\n"  # no cloud section at all
    assert bake_key(IMAGE, with_ami_text, "0.1.0", "r") == key
    assert bake_key(IMAGE, reordered, "0.1.0", "r") == key
    assert bake_key(IMAGE, defaults_only, "0.1.0", "r") == key
    assert bake_key(IMAGE, defaults_only + "cloud: {ami: ami-0abc1234}\n", "0.1.0", "r") == key


@pytest.mark.parametrize(
    ("image", "text", "version", "recipe"),
    [
        ("sha256:" + "00" * 32, BASE, "0.1.0", "r"),
        (IMAGE, BASE.replace("us-east-1", "eu-west-1"), "0.1.0", "r"),
        (IMAGE, BASE + "resources: {cpus: 4}\n", "0.1.0", "r"),
        (IMAGE, BASE, "0.2.0", "r"),
        (IMAGE, BASE, "0.1.0", "other recipe"),
    ],
)
def test_bake_key_changes_with_what_the_ami_holds(
    image: str, text: str, version: str, recipe: str
) -> None:
    assert bake_key(image, text, version, recipe) != bake_key(IMAGE, BASE, "0.1.0", "r")


# -- --cloud refuses LocalStack settings -----------------------------------------------------
def test_cloud_refuses_an_endpoint() -> None:
    with pytest.raises(UsageError, match="--endpoint-url"):
        check_cloud_environment({}, "http://localhost:4566")


@pytest.mark.parametrize(
    "environ",
    [
        {"AWS_ENDPOINT_URL": "http://localhost:4566"},
        {"AWS_ENDPOINT_URL_EC2": "http://localhost:4566"},
        {"AWS_ACCESS_KEY_ID": "test"},
    ],
)
def test_cloud_refuses_localstack_environment(environ: dict[str, str]) -> None:
    with pytest.raises(UsageError) as caught:
        check_cloud_environment(environ, None)
    assert caught.value.exit_code == 2 and caught.value.hint


def test_cloud_accepts_real_settings() -> None:
    check_cloud_environment({"AWS_PROFILE": "lab", "AWS_ACCESS_KEY_ID": "AKIA..."}, None)


# -- the provisioning report ------------------------------------------------------------------
def _expected(write_blueprint: WriteBlueprint) -> dict[str, object]:
    loaded = load_blueprint(write_blueprint())
    manifest = baked_manifest(loaded, IMAGE, "cd" * 32, "ef" * 32, NOW)
    return {**manifest, "baked": manifest, "runner_python": RUNNER_PYTHON}


def _report(expected: dict[str, object], how: str = "archive") -> dict[str, object]:
    return {
        "ncaas_version": __version__,
        "runner_python": RUNNER_PYTHON,
        "image": {"how": how, "id": IMAGE, "repo_tags": [expected["image_tag"]]},
        "baked": expected["baked"],
    }


def test_matching_report_passes(write_blueprint: WriteBlueprint) -> None:
    expected = _expected(write_blueprint)
    assert check_report(_report(expected), expected, require_docker=False) == []
    assert check_report(_report(expected, "docker"), expected, require_docker=True) == []


def test_report_mismatches_are_named(write_blueprint: WriteBlueprint) -> None:
    expected = _expected(write_blueprint)
    report = _report(expected)
    report["ncaas_version"] = "0.0.1"
    report["image"] = {"how": "archive", "id": "sha256:" + "00" * 32, "repo_tags": []}
    report["baked"] = {}
    problems = check_report(report, expected, require_docker=True)
    assert any("ncaas-dev 0.0.1" in p for p in problems)
    assert any("expected " + IMAGE in p for p in problems)
    assert any("not loaded in Docker" in p for p in problems)
    assert any("does not tag" in p for p in problems)
    assert any("baked.json" in p for p in problems)


def test_a_batch_bake_needs_its_runner_image_on_the_machine(
    write_blueprint: WriteBlueprint,
) -> None:
    expected = {**_expected(write_blueprint), "runner_image_id": "sha256:" + "ab" * 32}
    report = _report(expected, "docker")
    assert any("runner image there is None" in p for p in check_report(report, expected, True))
    report["runner_image"] = {"how": "archive", "id": expected["runner_image_id"]}
    assert check_report(report, expected, require_docker=False) == []
    assert check_report(report, expected, require_docker=True) == [
        "the runner image is not loaded in Docker on the instance"
    ]
    report["runner_image"] = {"how": "docker", "id": expected["runner_image_id"]}
    assert check_report(report, expected, require_docker=True) == []


def test_baked_manifest_says_what_was_baked(write_blueprint: WriteBlueprint) -> None:
    loaded = load_blueprint(write_blueprint())
    manifest = baked_manifest(loaded, IMAGE, "cd" * 32, "ef" * 32, NOW)
    assert manifest == {
        "analysis": "my-analysis",
        "image_tag": "ncaas/my-analysis:latest",
        "image_id": IMAGE,
        "image_archive_sha256": "cd" * 32,
        "blueprint_hash": loaded.content_hash,
        "bake_key": "ef" * 32,
        "ncaas_version": __version__,
        "gpu": False,
        "baked_at": "2026-11-25T09:30:00Z",
    }


# -- writing cloud.ami back -------------------------------------------------------------------
def _changed_lines(before: str, after: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="")
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def test_write_back_touches_only_the_ami_line() -> None:
    before = SPIKE.read_text()
    after = with_ami(before, "ami-0123456789abcdef0", "baked from sha256:ab")
    assert _changed_lines(before, after) == [
        "+  ami: ami-0123456789abcdef0  # baked from sha256:ab"
    ]
    assert "# Spike detection" in after  # the user's comments survive


def test_write_back_adds_a_cloud_section_and_keeps_quotes() -> None:
    before = PROBE.read_text()
    after = with_ami(before, "ami-0123456789abcdef0", "note")
    assert _changed_lines(before, after) == [
        "+cloud:",
        "+  ami: ami-0123456789abcdef0  # note",
    ]
    # "yes" stays quoted: unquoted, YAML 1.1 would read it as a boolean.
    assert yaml.safe_load(after)["run"]["env"]["EXTRA"] == "yes"


def test_write_back_replaces_an_old_ami_and_its_note_only() -> None:
    before = (
        "analysis: spikes\ncloud:\n    region: eu-west-1\n    ami: ami-00000001  # old note\n"
        "    # a comment of the user's\n    volume_gb: 20\ngroups:\n-   name: labA\n"
    )
    after = with_ami(before, "ami-0000000000000002", "new note")
    assert _changed_lines(before, after) == [
        "-    ami: ami-00000001  # old note",
        "+    ami: ami-0000000000000002 # new note",
    ]


def test_write_ami_reloads_a_valid_blueprint(tmp_path: Path) -> None:
    folder = tmp_path / "spike"
    shutil.copytree(SPIKE.parent, folder)
    loaded = write_ami(folder, "ami-0123456789abcdef0", "baked")
    assert loaded.blueprint.cloud.ami == "ami-0123456789abcdef0"
    assert loaded.blueprint.cloud.instance_type == "m5.large"
    assert not list(folder.glob(".*bake-tmp"))


def test_cache_entries_appear_whole_and_the_first_one_stays(tmp_path: Path) -> None:
    target = tmp_path / "cache" / "entry"
    with _publish(target) as scratch:
        (scratch / "a.whl").write_text("first")
        assert not target.exists()  # nothing half-written is visible
    with _publish(target) as scratch:  # a concurrent bake that lost the race
        (scratch / "a.whl").write_text("second")
    assert (target / "a.whl").read_text() == "first"
    assert [p.name for p in target.parent.iterdir()] == ["entry"]  # no scratch left
    with pytest.raises(RuntimeError), _publish(tmp_path / "cache" / "failed"):
        raise RuntimeError("pip failed")
    assert sorted(p.name for p in target.parent.iterdir()) == ["entry"]


def test_where_the_ami_is_built_or_served_is_not_in_the_bake_key() -> None:
    """Issue 13, defects 1 and 10: bucket, subnet and security groups change no AMI."""
    where = "cloud: {region: us-east-1, bucket: spikes-lab, subnet_id: subnet-0123456789abcdef0, "
    where += "security_group_ids: [sg-0123456789abcdef0]}\n"
    text = "analysis: spikes\ngroups: [{name: labA}]\n"
    assert bake_key(IMAGE, text + where, "0.1.0", "r") == bake_key(IMAGE, BASE, "0.1.0", "r")


def test_the_cloud_build_runs_in_the_blueprints_subnet(write_blueprint: WriteBlueprint) -> None:
    folder = write_blueprint("analysis: spikes\ngroups: [{name: labA}]\n")
    variables = packer.packer_variables(
        _plan(folder, subnet_id="subnet-0abc12345", security_group_ids=("sg-0abc12345",))
    )
    assert variables["subnet_id"] == "subnet-0abc12345"
    assert variables["security_group_ids"] == ["sg-0abc12345"]
    assert packer.packer_variables(_plan(folder))["subnet_id"] == ""  # the default VPC
