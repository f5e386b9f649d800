"""Mistakes a newcomer makes get feedback: misnamed submissions, an unpullable FROM, a renamed
analysis, an AMI older than the source, and `down` while jobs are unfinished."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from ncaas_dev.aws import ec2_client
from ncaas_dev.blueprint import LoadedBlueprint, load_blueprint
from ncaas_dev.cloud.layout import TAG_IMAGE_ID
from ncaas_dev.containers import Engine
from ncaas_dev.local.stack import PidFile
from ncaas_dev.settings import Settings
from ncaas_dev.storage import Storage

from .jobs import NCAAS_DEV, Lab, copy_blueprint, ncaas, new_analysis

pytestmark = pytest.mark.integration


def test_a_misnamed_submission_is_logged_and_listed(
    probe: LoadedBlueprint,
    cli_env: dict[str, str],
    storage: Storage,
    settings: Settings,
    dispatcher: int,
) -> None:
    lab = Lab(storage, probe.blueprint.analysis)
    body = json.dumps({"dataname": lab.dataset()}).encode()
    misnamed = [lab.put("submissions", name, body) for name in ("bob7_Submit.json", "bob5.json")]
    legitimate = [
        lab.put("submissions", "bob8_cancel.json", b'{"job": "job_none"}'),
        lab.put("submissions", "bob9_submit.json.job", b'{"job": "job_none"}'),
    ]
    log = settings.state_dir / "dispatcher.log"
    deadline = time.monotonic() + 60  # the sweep finds them (10 s apart)
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if all(f"{key} is not a submission" in text for key in misnamed):
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"no log line for {misnamed} in {log} within 60 s")
    assert "rename it labA/submissions/bob7_submit.json" in text
    assert "rename it labA/submissions/bob5_submit.json" in text
    assert not any(f"{key} is not a submission" in text for key in legitimate)

    listing = ncaas(["jobs", lab.bucket], cli_env)
    assert listing.returncode == 0, listing.stderr
    for key in misnamed:
        assert f"note: {key} is not a submission" in listing.stderr
    assert not any(key in listing.stderr for key in legitimate)
    for key in misnamed + legitimate:
        storage.delete(lab.bucket, key)


def _blueprint(tmp_path: Path, dockerfile: str) -> Path:
    folder = tmp_path / "bp"
    folder.mkdir()
    (folder / "Dockerfile").write_text(dockerfile)
    doc = {"analysis": new_analysis("feedback"), "groups": [{"name": "labA", "users": ["a"]}]}
    (folder / "blueprint.yaml").write_text(yaml.safe_dump(doc))
    return folder


def test_an_unpullable_from_names_the_local_base(cli_env: dict[str, str], tmp_path: Path) -> None:
    folder = _blueprint(tmp_path, 'FROM ncaas/no-such-base:nowhere\nCMD ["true"]\n')
    built = ncaas(["build", str(folder)], cli_env)
    assert built.returncode == 1
    assert "FROM ncaas/no-such-base:nowhere" in built.stderr
    assert "ncaas/base:bookworm" in built.stderr, built.stderr


def test_a_failed_builds_hint_has_no_escape_codes_in_a_pipe(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    folder = _blueprint(
        tmp_path, "FROM ncaas/base:bookworm\nRUN printf '\\033[31mboom\\033[0m\\n' && false\n"
    )
    built = ncaas(["build", str(folder)], cli_env)
    assert built.returncode == 1
    assert "boom" in built.stderr and "\x1b" not in built.stderr, repr(built.stderr)


def test_init_announces_a_renamed_analysis(cli_env: dict[str, str], tmp_path: Path) -> None:
    done = ncaas(["init", "My_Analysis"], cli_env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "named my-analysis, not My_Analysis" in " ".join(done.stdout.split())
    assert load_blueprint(tmp_path / "My_Analysis").blueprint.analysis == "my-analysis"


def test_doctor_fails_an_ami_older_than_the_source(
    cli_env: dict[str, str],
    settings: Settings,
    engine: Engine,
    probe: LoadedBlueprint,
    tmp_path: Path,
) -> None:
    folder = copy_blueprint(probe.folder, tmp_path / "bp", "doctor-ami")
    image_id = engine.build(load_blueprint(folder))
    ec2 = ec2_client(settings)
    ami = ec2.register_image(
        Name=f"ncaas-test-{folder.name}-{image_id[7:19]}",
        RootDeviceName="/dev/sda1",
        BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 8}}],
    )["ImageId"]
    try:
        ec2.create_tags(Resources=[ami], Tags=[{"Key": TAG_IMAGE_ID, "Value": image_id}])
        doc = yaml.safe_load((folder / "blueprint.yaml").read_text())
        doc["cloud"] = {"ami": ami}
        (folder / "blueprint.yaml").write_text(yaml.safe_dump(doc))
        checks = json.loads(ncaas(["doctor", str(folder), "--json"], cli_env).stdout)["checks"]
        assert next(c for c in checks if c["name"] == "ami")["level"] == "ok"

        # The source changes; nothing is rebuilt by hand: the AMI is now stale.
        with (folder / "probe.py").open("a") as source:
            source.write("# changed after the bake\n")
        done = ncaas(["doctor", str(folder), "--json"], cli_env)
        check = next(c for c in json.loads(done.stdout)["checks"] if c["name"] == "ami")
        assert check["level"] == "fail" and "was baked from image" in check["detail"], check
        assert check["fix"] == f"bake again with `ncaas-dev bake {folder.resolve()}`"
        assert done.returncode == 1
    finally:
        ec2.deregister_image(ImageId=ami)


def test_down_with_a_job_unfinished_refuses_without_yes(
    probe: LoadedBlueprint,
    cli_env: dict[str, str],
    storage: Storage,
    settings: Settings,
    dispatcher: int,
) -> None:
    lab = Lab(storage, probe.blueprint.analysis)
    job = lab.wait_job(lab.submit(dataname=lab.dataset(), configname=lab.config(sleep=8)))
    done = subprocess.run(  # no terminal: stdin is /dev/null
        [str(NCAAS_DEV), "down"],
        env=cli_env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--yes" in done.stderr and job in done.stderr
    assert "object(s)" in done.stdout and "stay on disk" in done.stdout
    for name in ("localstack", "dispatcher"):  # nothing was stopped
        assert PidFile(settings.state_dir, name).read().running
    assert lab.wait_end(job).state.value == "succeeded"
