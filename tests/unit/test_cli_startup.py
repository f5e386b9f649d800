"""The CLI starts fast because it imports little: these guard what it imports, never how long
it takes (start-up is measured in benchmarks/bench_startup.py)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock
from urllib.parse import quote

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from ncaas_dev.local.status import _bucket_names, probe_analyses, sign_v4, stack_status
from ncaas_dev.settings import Settings

# What only some commands need: each costs tens of milliseconds to import.
HEAVY = ("boto3", "botocore", "docker", "pydantic", "rich", "yaml", "ruamel", "ncaas_dev.cloud")


def _imported_by(code: str, tmp_path: Path) -> set[str]:
    """Modules among HEAVY that ``code`` (run in a fresh interpreter) leaves imported."""
    env = {**os.environ, "NCAAS_STATE_DIR": str(tmp_path), "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    loaded = done.stdout.split()
    return {h for h in HEAVY if any(m == h or m.startswith(h + ".") for m in loaded)}


def _run_main(*argv: str) -> str:
    return (
        "import sys, contextlib, io\n"
        f"sys.argv = ['ncaas-dev', {', '.join(repr(a) for a in argv)}]\n"
        "from ncaas_dev.cli.app import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main()"
    )


def test_importing_the_cli_imports_no_heavy_module(tmp_path: Path) -> None:
    assert _imported_by("import ncaas_dev.cli.app", tmp_path) == set()


def test_help_imports_no_heavy_module(tmp_path: Path) -> None:
    assert _imported_by(_run_main("--help"), tmp_path) == set()
    assert _imported_by(_run_main("status", "--help"), tmp_path) == set()


def test_status_json_imports_no_heavy_module(tmp_path: Path) -> None:
    """`status` reads pid files and asks the endpoint over plain HTTP; Typer's pydantic-based
    coercion is bypassed for its str and bool options."""
    assert _imported_by(_run_main("status", "--json"), tmp_path) == set()


def test_status_imports_rich_for_its_output_only(tmp_path: Path) -> None:
    assert _imported_by(_run_main("status"), tmp_path) == {"rich"}


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/"), ("HEAD", "/spike-detect/.ncaas/blueprint.json"), ("HEAD", "/a b/ü~x.json")],
)
def test_signature_is_botocores(method: str, path: str) -> None:
    now = dt.datetime(2026, 11, 25, 8, 30, 5, tzinfo=dt.UTC)
    host, region = "127.0.0.1:4566", "eu-west-2"
    # As botocore's serializer hands it over: the key already URI-encoded.
    url = f"http://{host}{quote(path, safe='/~')}"
    request = AWSRequest(method=method, url=url, data=b"")
    with mock.patch("botocore.auth.get_current_datetime", return_value=now):
        S3SigV4Auth(Credentials("test", "test"), "s3", region).add_auth(request)
    ours = sign_v4(method, host, path, region, now)
    assert ours["authorization"] == request.headers["Authorization"]
    assert ours["x-amz-date"] == request.headers["X-Amz-Date"]


def test_bucket_names_are_read_from_list_buckets() -> None:
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<Owner><ID>x</ID><DisplayName>webfile</DisplayName></Owner><Buckets>"
        b"<Bucket><Name>spike-detect</Name><CreationDate>2026-11-25T08:00:00Z</CreationDate>"
        b"</Bucket><Bucket><Name>other</Name></Bucket></Buckets></ListAllMyBucketsResult>"
    )
    assert _bucket_names(body) == ["spike-detect", "other"]


def test_a_closed_endpoint_does_not_answer_and_has_no_analyses(tmp_path: Path) -> None:
    settings = Settings(endpoint_url="http://127.0.0.1:9", state_dir=tmp_path)
    assert probe_analyses(settings) == (False, [])
    doc = stack_status(settings)
    assert doc["endpoint_answers"] is False and doc["localstack"]["running"] is False
    assert doc["analyses"] == [] and doc["dispatcher"]["pid"] is None
