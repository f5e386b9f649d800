"""`ncaas-dev bake` for real: Packer against the session's LocalStack EC2, the provisioning
proved in a stand-in container, the AMI recorded in a copy of the blueprint."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from ncaas_dev import __version__
from ncaas_dev.aws import client as aws_client
from ncaas_dev.blueprint import load_blueprint
from ncaas_dev.cloud.bake import packer
from ncaas_dev.cloud.ec2.images import check_ami
from ncaas_dev.cloud.layout import (
    RUNNER_IMAGE,
    TAG_ANALYSIS,
    TAG_BAKE_KEY,
    TAG_IMAGE_ID,
    TAG_VERSION,
)
from ncaas_dev.containers import Engine
from ncaas_dev.settings import Settings

from .jobs import ncaas, new_analysis, pin_image, remove_image

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@dataclass(frozen=True)
class Baked:
    folder: Path
    analysis: str
    result: dict[str, Any]
    work: Path  # the bake's work folder in the session's state dir


@pytest.fixture(scope="module")
def baked(
    tmp_path_factory: pytest.TempPathFactory,
    cli_env: dict[str, str],
    settings: Settings,
    engine: Engine,
) -> Iterator[Baked]:
    """The probe blueprint (a copy under a unique name) baked once, cold, by the CLI."""
    folder = tmp_path_factory.mktemp("bake") / "probe"
    shutil.copytree(FIXTURES / "probe", folder)
    analysis = new_analysis("ncaas-bake")
    text = (folder / "blueprint.yaml").read_text()
    (folder / "blueprint.yaml").write_text(
        text.replace("analysis: ncaas-probe", f"analysis: {analysis}")
    )
    # Built and pinned first (bake's own build is then a cache hit on the same image): the later
    # tests check the baked image's id stays, and other sessions' clean-up must not take it.
    engine.build(load_blueprint(folder))
    pin_image(engine, f"ncaas/{analysis}:latest")
    done = ncaas(["bake", str(folder), "--json"], cli_env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    work = settings.state_dir / "bake" / analysis
    yield Baked(folder, analysis, json.loads(done.stdout), work)
    shutil.rmtree(work, ignore_errors=True)  # a 1 GB image archive
    remove_image(engine, f"ncaas/{analysis}:latest")  # and its pin


def _ec2(settings: Settings, region: str) -> Any:
    return aws_client(replace(settings, region=region), "ec2")


def test_bake_registers_a_tagged_ami_in_localstack(
    baked: Baked, settings: Settings, engine: Engine
) -> None:
    result = baked.result
    assert result["baked"] is True
    assert result["region"] == "us-east-1"
    assert result["image_id"] == engine.image_id(f"ncaas/{baked.analysis}:latest")
    (image,) = _ec2(settings, result["region"]).describe_images(ImageIds=[result["ami"]])["Images"]
    tags = {t["Key"]: t["Value"] for t in image["Tags"]}
    assert tags[TAG_ANALYSIS] == baked.analysis
    assert tags[TAG_IMAGE_ID] == result["image_id"]
    assert tags[TAG_BAKE_KEY] == result["bake_key"]
    assert tags[TAG_VERSION] == __version__


def test_the_ec2_launcher_accepts_the_recorded_ami(
    baked: Baked, settings: Settings, engine: Engine
) -> None:
    # After the write-back, the image `run`/`up` build is still the one the AMI holds.
    loaded = load_blueprint(baked.folder)
    image_id = engine.build(loaded)
    assert image_id == baked.result["image_id"]
    region = loaded.blueprint.cloud.region
    ec2 = _ec2(settings, region)
    assert check_ami(ec2, str(loaded.blueprint.cloud.ami), image_id, region, settings)


def test_bake_records_the_ami_in_the_blueprint(baked: Baked) -> None:
    text = (baked.folder / "blueprint.yaml").read_text()
    assert (
        f"ami: {baked.result['ami']}  # baked by ncaas-dev from {baked.result['image_id']}" in text
    )
    assert yaml.safe_load(text)["run"]["env"]["EXTRA"] == "yes"  # the rest is untouched
    assert load_blueprint(baked.folder).blueprint.cloud.ami == baked.result["ami"]


def test_standin_proves_the_provisioning(baked: Baked, engine: Engine) -> None:
    proof = baked.result["proof"]
    assert proof["on"] == packer.SOURCE_STANDIN
    assert proof["runner_python"] == "/opt/ncaas/venv/bin/python"
    assert proof["runner_module"].startswith("/opt/ncaas/venv/lib/")
    assert proof["ncaas_version"] == __version__
    assert proof["image"]["id"] == baked.result["image_id"]
    assert proof["image"]["repo_tags"] == [f"ncaas/{baked.analysis}:latest"]
    assert proof["system_step"].startswith("skipped")
    assert proof["network_interfaces"] == ["lo"]  # installed from the shipped wheels alone
    assert proof["runner_image"] is None  # not a Batch analysis: no runner image shipped
    shipped = json.loads((baked.work / "payload" / "baked.json").read_text())
    assert proof["baked"] == shipped
    assert shipped["image_id"] == baked.result["image_id"]
    assert shipped["bake_key"] == baked.result["bake_key"]
    # The archive the file provisioner shipped loads, as the very image.
    with (baked.work / "payload" / "image.tar").open("rb") as archive:
        (loaded,) = engine.client.images.load(archive)
    assert loaded.id == baked.result["image_id"]


def test_a_batch_analysis_bakes_the_runner_image_its_jobs_name(
    cli_env: dict[str, str], engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    """A ``batch:`` section: the payload carries ``ncaas/runner:baked`` (the job definition's
    image), built from the bake's own wheels, proved in the stand-in like the analysis image."""
    folder = tmp_path / "probe"
    shutil.copytree(FIXTURES / "probe", folder)
    analysis = new_analysis("ncaas-bakeb")
    text = (folder / "blueprint.yaml").read_text()
    text = text.replace("analysis: ncaas-probe", f"analysis: {analysis}")
    (folder / "blueprint.yaml").write_text(text + "batch: {spot: true}\n")
    try:
        done = ncaas(["bake", str(folder), "--json"], cli_env, timeout=900)
        assert done.returncode == 0, done.stdout + done.stderr
        proof = json.loads(done.stdout)["proof"]
        runner_id = engine.image_id(RUNNER_IMAGE)
        assert runner_id and proof["runner_image"]["id"] == runner_id
        assert proof["runner_image"]["repo_tags"] == [RUNNER_IMAGE]
        work = settings.state_dir / "bake" / analysis
        assert (work / "payload" / "runner.tar").is_file()
        # What a Batch job runs in it: the runner's own module, offline.
        version = engine.client.containers.run(
            RUNNER_IMAGE,
            ["python3", "-c", "import ncaas_dev, ncaas_dev.runner; print(ncaas_dev.__version__)"],
            network_mode="none",
            remove=True,
        )
        assert version.decode().strip() == __version__
    finally:
        shutil.rmtree(settings.state_dir / "bake" / analysis, ignore_errors=True)
        remove_image(engine, f"ncaas/{analysis}:latest")


def test_second_bake_is_up_to_date_without_packer(
    baked: Baked, cli_env: dict[str, str], tmp_path: Path
) -> None:
    # A packer that fails and leaves a mark: the up-to-date bake must not run it at all.
    shim = tmp_path / "bin"
    shim.mkdir()
    mark = tmp_path / "packer-ran"
    (shim / "packer").write_text(f"#!/bin/sh\ntouch {mark}\nexit 3\n")
    (shim / "packer").chmod(0o755)
    env = {**cli_env, "PATH": f"{shim}:{cli_env['PATH']}"}
    done = ncaas(["bake", str(baked.folder), "--json"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    again = json.loads(done.stdout)
    assert again["baked"] is False
    assert again["ami"] == baked.result["ami"]
    assert again["bake_key"] == baked.result["bake_key"]
    assert not mark.exists()
    text = ncaas(["bake", str(baked.folder)], env)
    assert text.returncode == 0 and "up to date" in text.stdout


def test_rendered_template_passes_packer_fmt_and_validate(baked: Baked, tmp_path: Path) -> None:
    packer.fmt_check(log_path=tmp_path / "fmt.log")
    var_file = baked.work / "vars.pkrvars.json"
    packer.validate(var_file, env=packer.packer_env({}), log_path=tmp_path / "validate.log")
    assert json.loads(var_file.read_text())["tags"][TAG_ANALYSIS] == baked.analysis


def test_packer_failure_shows_its_log_tail(tmp_path: Path) -> None:
    var_file = tmp_path / "vars.pkrvars.json"
    var_file.write_text(json.dumps({"volume_gb": "not a number"}))
    with pytest.raises(packer.PackerFailed) as caught:
        packer.validate(var_file, env=packer.packer_env({}), log_path=tmp_path / "v.log")
    assert caught.value.exit_code == 1
    assert "Error" in (caught.value.hint or "")
    assert str(tmp_path / "v.log") in caught.value.message


def test_missing_packer_gives_one_line(cli_env: dict[str, str], tmp_path: Path) -> None:
    env = {**cli_env, "PATH": str(tmp_path)}  # no packer (and nothing else) on PATH
    done = ncaas(["bake", str(FIXTURES / "probe")], env)
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "apt-get install packer" in lines[0], done.stderr


@pytest.mark.parametrize(
    ("args", "extra_env"),
    [
        (["--cloud", "--endpoint-url", "http://127.0.0.1:4566"], {}),
        (["--cloud"], {"AWS_ENDPOINT_URL": "http://127.0.0.1:4566"}),
        (["--cloud"], {"AWS_ACCESS_KEY_ID": "test"}),
    ],
)
def test_cloud_refuses_localstack_settings(
    args: list[str], extra_env: dict[str, str], cli_env: dict[str, str]
) -> None:
    env = {k: v for k, v in cli_env.items() if not k.startswith("AWS_")} | extra_env
    done = ncaas(["bake", str(FIXTURES / "probe"), *args], env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--cloud" in done.stderr


def test_bad_blueprint_exits_2(cli_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM ncaas/base:bookworm\n")
    (tmp_path / "blueprint.yaml").write_text(
        "analysis: ok-name\ngroups: [{name: a}]\ncloud: {amy: x}\n"
    )
    done = ncaas(["bake", str(tmp_path)], cli_env)
    assert done.returncode == 2
    assert "cloud.amy" in done.stderr


@pytest.mark.parametrize(
    ("source_ami", "gpu"),
    [(None, False), (None, True), ("ami-0123456789abcdef0", False), ("self:lab-base-*", False)],
)
def test_cloud_variables_validate(
    source_ami: str | None, gpu: bool, baked: Baked, tmp_path: Path
) -> None:
    """What `--cloud` would hand Packer (untestable here without AWS) is a valid template."""
    plan = packer.BakePlan(
        analysis=baked.analysis,
        region="eu-west-1",
        instance_type="g4dn.xlarge" if gpu else "m5.large",
        volume_gb=30,
        gpu=gpu,
        image_id=baked.result["image_id"],
        image_tag=f"ncaas/{baked.analysis}:latest",
        archive_sha256="0" * 64,
        bake_key=baked.result["bake_key"],
        version=__version__,
        source=packer.source_ami(source_ami, gpu),
        ami_name="ncaas-validate",
        payload_dir=baked.work / "payload",
        verify_report=tmp_path / "verify.json",
        manifest=tmp_path / "manifest.json",
    )
    var_file = packer.write_variables(plan, tmp_path / "vars.pkrvars.json")
    packer.validate(var_file, env=packer.packer_env({}), log_path=tmp_path / "validate.log")
