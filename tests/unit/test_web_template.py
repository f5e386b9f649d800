"""The web client's parts of the deploy template: the bucket's CORS rule and the Cognito pool."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from ncaas_dev.blueprint import Blueprint, parse_blueprint
from ncaas_dev.cloud.deploy import template as t


def blueprint() -> Blueprint:
    doc: dict[str, Any] = {
        "analysis": "spike-detect",
        "groups": [
            {"name": "labA", "users": ["alice", "bob"]},
            {"name": "lab-b", "users": ["carol"]},
        ],
    }
    return parse_blueprint(doc, "test")


def of_type(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r for r in template["Resources"].values() if r["Type"] == kind]


def test_cognito_pool_has_one_group_per_blueprint_group_holding_its_users() -> None:
    template = t.render_template(blueprint(), t.TemplateOptions(cognito=True))
    (client,) = of_type(template, "AWS::Cognito::UserPoolClient")
    assert "ALLOW_USER_PASSWORD_AUTH" in client["Properties"]["ExplicitAuthFlows"]
    assert client["Properties"]["GenerateSecret"] is False
    groups = {
        g["Properties"]["GroupName"] for g in of_type(template, "AWS::Cognito::UserPoolGroup")
    }
    assert groups == {"labA", "lab-b"}
    ids = {k: v for k, v in template["Resources"].items()}
    members = set()
    for attach in of_type(template, "AWS::Cognito::UserPoolUserToGroupAttachment"):
        props = attach["Properties"]
        group = ids[props["GroupName"]["Ref"]]["Properties"]["GroupName"]
        user = ids[props["Username"]["Ref"]]["Properties"]["Username"]
        members.add((group, user))
    assert members == {("labA", "alice"), ("labA", "bob"), ("lab-b", "carol")}
    assert {"CognitoUserPoolId", "CognitoClientId"} <= set(template["Outputs"])


def test_no_cognito_unless_asked() -> None:
    template = t.render_template(blueprint(), t.TemplateOptions())
    assert not [r for r in template["Resources"].values() if "Cognito" in r["Type"]]


def test_bucket_lets_the_web_client_put_parts_and_read_etags() -> None:
    template = t.render_template(blueprint(), t.TemplateOptions())
    (bucket,) = of_type(template, "AWS::S3::Bucket")
    (rule,) = bucket["Properties"]["CorsConfiguration"]["CorsRules"]
    assert "PUT" in rule["AllowedMethods"] and rule["ExposedHeaders"] == ["ETag"]
    assert "http://127.0.0.1:8765" in rule["AllowedOrigins"]
    lifecycle = bucket["Properties"]["LifecycleConfiguration"]["Rules"]
    assert any("AbortIncompleteMultipartUpload" in r for r in lifecycle)


def test_template_with_cognito_is_cfn_lint_clean(tmp_path: Path) -> None:
    lint = shutil.which("cfn-lint", path=str(Path(sys.executable).parent))
    assert lint, "cfn-lint is a dev dependency: pip install -e .[dev]"
    path = tmp_path / "stack.json"
    template = t.render_template(blueprint(), t.TemplateOptions(cognito=True))
    path.write_text(json.dumps(template, indent=1))
    done = subprocess.run([lint, str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
