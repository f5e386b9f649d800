"""Cognito sign-in against moto's cognito-idp (LocalStack's community edition has none).

The user pool is made from the deploy template's own Cognito resources, each resource's
properties handed to the cognito-idp call CloudFormation would make for it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import boto3
import pytest
from playwright.sync_api import Browser, Page, expect

from integration.jobs import ROOT, copy_blueprint
from ncaas_dev.analysis import AnalysisRecord, save_record
from ncaas_dev.aws import s3_client
from ncaas_dev.blueprint import LoadedBlueprint, load_blueprint
from ncaas_dev.cloud.deploy import template as t
from ncaas_dev.settings import Settings
from ncaas_dev.storage import Storage
from ncaas_dev.web.auth import CognitoConfig

from .conftest import ServeApp, screenshot

pytestmark = pytest.mark.integration
PASSWORD = "Correct-Horse-42"


def _apply_pool(idp: Any, template: dict[str, Any]) -> str:
    """Create the template's Cognito resources in moto, in dependency order; the client id."""
    made: dict[str, str] = {}
    resources = template["Resources"]

    def ref(value: Any) -> Any:
        return made[value["Ref"]] if isinstance(value, dict) and "Ref" in value else value

    def of(kind: str) -> list[tuple[str, dict[str, Any]]]:
        return [
            (k, {p: ref(v) for p, v in r["Properties"].items()})
            for k, r in resources.items()
            if r["Type"] == kind
        ]

    for key, props in of("AWS::Cognito::UserPool"):
        props["PoolName"] = props.pop("UserPoolName")
        made[key] = idp.create_user_pool(**props)["UserPool"]["Id"]
    for key, props in of("AWS::Cognito::UserPoolClient"):
        made[key] = idp.create_user_pool_client(**props)["UserPoolClient"]["ClientId"]
    for key, props in of("AWS::Cognito::UserPoolGroup"):
        made[key] = idp.create_group(**props)["Group"]["GroupName"]
    for key, props in of("AWS::Cognito::UserPoolUser"):
        made[key] = idp.admin_create_user(**props)["User"]["Username"]
        # What the operator does next (the pool sends no invitation): a permanent password.
        idp.admin_set_user_password(
            UserPoolId=props["UserPoolId"], Username=made[key], Password=PASSWORD, Permanent=True
        )
    for _, props in of("AWS::Cognito::UserPoolUserToGroupAttachment"):
        idp.admin_add_user_to_group(**props)
    pool = next(made[k] for k, _ in of("AWS::Cognito::UserPool"))
    # Someone in the pool but in no group of this analysis.
    idp.admin_create_user(UserPoolId=pool, Username="mallory", MessageAction="SUPPRESS")
    idp.admin_set_user_password(
        UserPoolId=pool, Username="mallory", Password=PASSWORD, Permanent=True
    )
    idp.create_group(UserPoolId=pool, GroupName="outsiders")
    idp.admin_add_user_to_group(UserPoolId=pool, Username="mallory", GroupName="outsiders")
    return next(made[k] for k, _ in of("AWS::Cognito::UserPoolClient"))


def _log_in(page: Page, url: str, user: str, password: str) -> None:
    page.goto(f"{url}/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("form.login button[type=submit]")


def test_cognito_sign_in_maps_groups(
    browser: Browser, serve_app: ServeApp, moto_url: str, probe: LoadedBlueprint, tmp_path: Path
) -> None:
    settings = Settings(endpoint_url=moto_url, state_dir=tmp_path)
    storage = Storage(s3_client(settings), moto_url)
    bucket = probe.blueprint.analysis
    storage.ensure_bucket(bucket, settings.region)
    save_record(storage, AnalysisRecord.of(probe, None))
    idp = boto3.client(
        "cognito-idp",
        region_name="us-east-1",
        endpoint_url=moto_url,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    template = t.render_template(probe.blueprint, t.TemplateOptions(cognito=True))
    client_id = _apply_pool(idp, template)
    web = serve_app(moto_url, cognito=CognitoConfig(client_id, "us-east-1", moto_url))

    page = browser.new_context().new_page()
    page.goto(f"{web.url}/a/{bucket}/jobs")  # signed out: to the Cognito sign-in, page kept
    assert "/login?next=" in page.url
    page.fill("input[name=username]", "carol")
    page.fill("input[name=password]", PASSWORD)
    page.click("form.login button[type=submit]")
    page.wait_for_url(re.compile(rf".*/a/{bucket}/jobs$"))
    expect(page.locator("header .who")).to_contain_text("group labB")
    page.goto(f"{web.url}/")
    expect(page.locator("ul.analyses")).to_contain_text(bucket)

    outsider = browser.new_context().new_page()
    _log_in(outsider, web.url, "mallory", PASSWORD)
    expect(outsider.locator("#problem")).to_contain_text("not a listed user of any group")
    screenshot(outsider, "cognito-refused")
    outsider.goto(f"{web.url}/a/{bucket}/jobs")
    assert outsider.url.startswith(f"{web.url}/login")  # refused: no session was made

    wrong = browser.new_context().new_page()
    _log_in(wrong, web.url, "alice", "not-the-password-1A")
    expect(wrong.locator("#problem")).to_contain_text("wrong user name or password")


def test_a_pool_signs_in_to_its_own_analysis_alone(
    browser: Browser,
    serve_app: ServeApp,
    moto_url: str,
    probe: LoadedBlueprint,
    tmp_path: Path,
) -> None:
    """Two analyses with a group of the same name (labA): a user of X's pool sees X alone, and
    only as one of the users X's blueprint lists for that group."""
    settings = Settings(endpoint_url=moto_url, state_dir=tmp_path)
    storage = Storage(s3_client(settings), moto_url)
    x = probe.blueprint.analysis
    other = load_blueprint(copy_blueprint(ROOT / "tests/fixtures/probe", tmp_path / "y", "ncaas-y"))
    y = other.blueprint.analysis
    for loaded in (probe, other):
        storage.ensure_bucket(loaded.blueprint.analysis, settings.region)
        save_record(storage, AnalysisRecord.of(loaded, None))
    idp = boto3.client(
        "cognito-idp",
        region_name="us-east-1",
        endpoint_url=moto_url,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    template = t.render_template(probe.blueprint, t.TemplateOptions(cognito=True))
    client_id = _apply_pool(idp, template)
    pool = idp.describe_user_pool_client(
        UserPoolId=idp.list_user_pools(MaxResults=60)["UserPools"][-1]["Id"], ClientId=client_id
    )["UserPoolClient"]["UserPoolId"]
    # In X's pool and its Cognito group labA, but not among the users X's blueprint lists.
    idp.admin_create_user(UserPoolId=pool, Username="eve", MessageAction="SUPPRESS")
    idp.admin_set_user_password(UserPoolId=pool, Username="eve", Password=PASSWORD, Permanent=True)
    idp.admin_add_user_to_group(UserPoolId=pool, Username="eve", GroupName="labA")
    # No --cognito-analysis: the server reads X from the pool's name (ncaas-X).
    web = serve_app(moto_url, cognito=CognitoConfig(client_id, "us-east-1", moto_url))

    page = browser.new_context().new_page()
    _log_in(page, web.url, "alice", PASSWORD)
    page.wait_for_url(f"{web.url}/")
    expect(page.locator("ul.analyses")).to_contain_text(x)
    expect(page.locator("ul.analyses")).not_to_contain_text(y)
    assert page.request.get(f"{web.url}/a/{x}/jobs").status == 200
    for path in (f"/a/{y}", f"/a/{y}/jobs", f"/a/{y}/files"):
        assert page.request.get(web.url + path).status == 404, path

    eve = browser.new_context().new_page()
    _log_in(eve, web.url, "eve", PASSWORD)
    expect(eve.locator("#problem")).to_contain_text(f"eve is not a listed user of any group of {x}")
    eve.goto(f"{web.url}/a/{x}/jobs")
    assert eve.url.startswith(f"{web.url}/login")  # refused: no session was made
