"""The Lambda's zip: the whole ncaas_dev package, wherever ``package.py`` lies within it, holding
the module the template names as the handler."""

from __future__ import annotations

import base64
import glob
import hashlib
import importlib
import importlib.metadata
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import boto3
import pytest

import ncaas_dev
from ncaas_dev.cloud.deploy import package
from ncaas_dev.cloud.deploy import template as t


def test_the_zip_holds_the_handler_module_the_template_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No pip (the dependencies come from PyPI): only ncaas_dev's own files are looked at.
    monkeypatch.setattr(package, "_install_dependencies", lambda target: target.mkdir())
    built = package.build_package(tmp_path)
    with zipfile.ZipFile(built.path) as archive:
        names = set(archive.namelist())
    module, _, function = t.LAMBDA_HANDLER.rpartition(".")
    assert "ncaas_dev/__init__.py" in names
    assert module.replace(".", "/") + ".py" in names
    assert callable(getattr(importlib.import_module(module), function))


def _python312() -> str | None:
    """A Python 3.12 (the Lambda runtime's), with no boto3 of its own."""
    pyenv = sorted(glob.glob("/root/.pyenv/versions/3.12*/bin/python"))
    check = "import sys, importlib.util as u; print(sys.version_info[:2] == (3, 12) and "
    check += "u.find_spec('boto3') is None)"
    for python in filter(None, [*pyenv, shutil.which("python3.12")]):
        done = subprocess.run([python, "-s", "-c", check], capture_output=True, text=True, env={})
        if done.stdout.strip() == "True":
            return python
    return None


def test_the_zip_runs_on_a_python_312_without_boto3(tmp_path: Path) -> None:
    """The real build (pip fetches manylinux wheels for Python 3.12): the handler imports, and
    builds its dispatcher, from the zip alone, with the pinned boto3 and ncaas-dev's version."""
    python = _python312()
    if python is None:
        pytest.skip("no Python 3.12 without boto3 on this machine")
    built = package.build_package(tmp_path / "cache")
    root = tmp_path / "unzipped"
    with zipfile.ZipFile(built.path) as archive:
        archive.extractall(root)
    probe = (
        "import json, boto3, botocore, s3transfer, ncaas_dev\n"
        "from ncaas_dev.cloud.deploy import lambda_handler as h\n"
        "h.build_dispatcher({'NCAAS_ANALYSIS': 'spike-detect', 'AWS_REGION': 'us-east-1'})\n"
        "print(json.dumps({'boto3': boto3.__version__, 'botocore': botocore.__version__,\n"
        "    's3transfer': s3transfer.__version__, 'ncaas': ncaas_dev.__version__,\n"
        "    'where': boto3.__file__}))\n"
    )
    env = {"PYTHONPATH": str(root), "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
    done = subprocess.run(
        [python, "-s", "-c", probe], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["where"].startswith(str(root))
    for name in ("boto3", "botocore", "s3transfer"):
        assert found[name] == importlib.metadata.version(name)
    assert found["ncaas"] == ncaas_dev.__version__ != "0.0.0+source"


@pytest.mark.parametrize(
    ("stored", "action"),
    [(None, "uploaded"), ("ours", "reused"), ("other", "uploaded"), ("none", "uploaded")],
)
def test_a_reused_artifact_is_checked_by_its_sha256(
    tmp_path: Path, stored: str | None, action: str
) -> None:
    """Issue 13, defect 12: an object at the artifact's key is reused only if S3's SHA-256 of
    it (HeadObject, ChecksumMode ENABLED) is the zip's; anything else there is replaced, with
    the checksum sent so S3 refuses a corrupted upload. (moto keeps no checksums: Stubber.)"""
    from botocore.stub import ANY, Stubber

    from ncaas_dev.storage import Storage

    zip_path = tmp_path / "d.zip"
    zip_path.write_bytes(b"PK zip bytes")
    raw = hashlib.sha256(zip_path.read_bytes()).digest()
    ours = base64.b64encode(raw).decode()
    built = package.Package(zip_path, raw.hex(), built=True, seconds=0.0)
    s3 = boto3.client(
        "s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    head = {"Bucket": "art-bucket", "Key": built.key, "ChecksumMode": "ENABLED"}
    with Stubber(s3) as stub:
        if stored is None:
            stub.add_client_error("head_object", "404", "Not Found", 404, expected_params=head)
        else:
            checksum = {"ours": ours, "other": base64.b64encode(b"x" * 32).decode()}.get(stored)
            reply = {"ChecksumSHA256": checksum} if checksum else {}
            stub.add_response("head_object", reply, head)
        if action == "uploaded":
            put = {"Bucket": "art-bucket", "Key": built.key, "Body": ANY, "ChecksumSHA256": ours}
            put["ContentType"] = "application/octet-stream"
            stub.add_response("put_object", {"ETag": '"e"'}, put)
        assert package.upload_artifact(Storage(s3, None), "art-bucket", built) == action
        stub.assert_no_pending_responses()
