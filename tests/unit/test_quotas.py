"""The account checked before anything is created (issue 24): botocore's Stubber answers as a
new account would, and each shortfall gets its one line (the exact quota name, found, needed,
the request to raise it). Only reads are queued, so any other call (a create) fails the test;
``deploy --cloud`` and ``bake --cloud`` refuse before they create or build anything."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from ncaas_dev.blueprint import Blueprint, parse_blueprint
from ncaas_dev.cloud import quotas
from ncaas_dev.errors import NcaasError

LAMBDA_OK = {"AccountLimit": {"ConcurrentExecutions": 1000, "UnreservedConcurrentExecutions": 1000}}
NEW_LAMBDA = {"AccountLimit": {"ConcurrentExecutions": 10, "UnreservedConcurrentExecutions": 10}}


def blueprint(**cloud: Any) -> Blueprint:
    gpu = cloud.pop("gpu", False)
    doc = {"analysis": "spike-q", "groups": [{"name": "labA"}], "cloud": cloud}
    return parse_blueprint({**doc, "resources": {"gpu": gpu}}, "test")


@dataclass
class Account:
    ec2: Any
    lambda_: Any
    quotas: Any
    stubs: list[Stubber]

    def offers(self, *kinds: str, vcpus: int = 4) -> None:
        offers = [
            {"InstanceType": k, "LocationType": "region", "Location": "us-east-1"} for k in kinds
        ]
        self.stubs[0].add_response(
            "describe_instance_type_offerings", {"InstanceTypeOfferings": offers}
        )
        if kinds:
            described = [{"InstanceType": k, "VCpuInfo": {"DefaultVCpus": vcpus}} for k in kinds]
            self.stubs[0].add_response("describe_instance_types", {"InstanceTypes": described})

    def quota(self, code: str, value: float) -> None:
        reply = {"Quota": {"QuotaCode": code, "ServiceCode": "ec2", "Value": value}}
        expected = {"ServiceCode": "ec2", "QuotaCode": code}
        self.stubs[2].add_response("get_service_quota", reply, expected)

    def check(self, bp: Blueprint, dispatcher: bool = True) -> quotas.AccountCheck:
        result = quotas.check_account(
            bp, self.ec2, self.lambda_, self.quotas, dispatcher=dispatcher
        )
        for stub in self.stubs:
            stub.assert_no_pending_responses()
        return result


@pytest.fixture
def account() -> Iterator[Account]:
    session = boto3.Session(
        aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1"
    )
    clients = [session.client(s) for s in ("ec2", "lambda", "service-quotas")]  # type: ignore[call-overload]
    stubs = [Stubber(c) for c in clients]
    for stub in stubs:
        stub.activate()
    yield Account(*clients, stubs)
    for stub in stubs:
        stub.deactivate()


def test_an_account_with_room_passes(account: Account) -> None:
    account.stubs[1].add_response("get_account_settings", LAMBDA_OK)
    account.offers("m5.xlarge")
    account.quota("L-1216C47A", 32)
    check = account.check(blueprint())
    assert check.ok, check.shortfalls
    assert any("Standard" in line for line in check.checked)


def test_new_lambda_concurrency_is_refused_with_its_quota(account: Account) -> None:
    account.stubs[1].add_response("get_account_settings", NEW_LAMBDA)
    account.offers("m5.xlarge")
    account.quota("L-1216C47A", 32)
    (shortfall,) = account.check(blueprint()).shortfalls
    assert shortfall.line() == (
        "Lambda 'Concurrent executions' (L-B99A9384): found 10 unreserved of 10, needed 11 "
        "unreserved (the dispatcher reserves 1, AWS keeps 10); ask for more: aws "
        "service-quotas request-service-quota-increase --service-code lambda --quota-code "
        "L-B99A9384 --desired-value 1000"
    )


def test_zero_gpu_vcpus_is_refused_with_the_g_quota(account: Account) -> None:
    account.stubs[1].add_response("get_account_settings", LAMBDA_OK)
    account.offers("g4dn.xlarge")
    account.quota("L-DB2E81BA", 0)
    (shortfall,) = account.check(blueprint(gpu=True)).shortfalls
    assert shortfall.line() == (
        "EC2 'Running On-Demand G and VT instances' (L-DB2E81BA): found 0 vCPUs, needed 4 "
        "for one g4dn.xlarge, 16 for max_concurrent_jobs 4 at once; ask for more: aws "
        "service-quotas request-service-quota-increase --service-code ec2 --quota-code "
        "L-DB2E81BA --desired-value 16"
    )


def test_allowed_types_of_other_classes_are_checked_each(account: Account) -> None:
    account.stubs[1].add_response("get_account_settings", LAMBDA_OK)
    account.offers("m5.xlarge", "g5.xlarge", vcpus=96)
    account.quota("L-1216C47A", 5)  # too few for a 96-vCPU type (the stub's answer)
    account.quota("L-DB2E81BA", 0)
    check = account.check(blueprint(allowed_instance_types=["g5.xlarge"]))
    names = [s.what for s in check.shortfalls]
    assert names == [
        "EC2 'Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances' (L-1216C47A)",
        "EC2 'Running On-Demand G and VT instances' (L-DB2E81BA)",
    ]


def test_a_type_the_region_does_not_offer_is_refused(account: Account) -> None:
    account.stubs[1].add_response("get_account_settings", LAMBDA_OK)
    account.offers()
    (shortfall,) = account.check(blueprint(instance_type="m7i.xlarge")).shortfalls
    assert shortfall.line() == (
        "instance type m7i.xlarge: found not offered in us-east-1, needed a type the region "
        "offers; pick another (aws ec2 describe-instance-type-offerings --region us-east-1) "
        "or another cloud.region"
    )


def test_a_new_account_pending_verification_is_refused_with_what_it_means(
    account: Account,
) -> None:
    account.stubs[1].add_response("get_account_settings", LAMBDA_OK)
    account.offers("m5.xlarge")
    account.quota("L-1216C47A", 32)
    account.stubs[0].add_client_error(
        "run_instances",
        service_error_code="PendingVerification",
        service_message="Your request for accessing resources in this region is being validated",
    )
    (shortfall,) = account.check(blueprint(ami="ami-0123456789abcdef0")).shortfalls
    assert shortfall.line().startswith("account verification: found PendingVerification, ")
    assert "up to 4 hours" in shortfall.line()


def test_bake_does_not_ask_about_the_dispatcher(account: Account) -> None:
    account.offers("m5.xlarge")
    account.quota("L-1216C47A", 32)
    assert account.check(blueprint(), dispatcher=False).ok  # no Lambda answer queued


def test_the_refusal_is_one_line_per_shortfall(account: Account) -> None:
    account.stubs[1].add_response("get_account_settings", NEW_LAMBDA)
    account.offers("g4dn.xlarge")
    account.quota("L-DB2E81BA", 0)
    error = account.check(blueprint(gpu=True)).refusal()
    lines = error.message.splitlines()
    assert "nothing was created" in lines[0]
    assert lines[1].strip().startswith("Lambda 'Concurrent executions'")
    assert lines[2].strip().startswith("EC2 'Running On-Demand G and VT instances'")
    assert error.exit_code == 1


@pytest.mark.parametrize("step", ["deploy", "bake"])
def test_deploy_and_bake_cloud_refuse_before_creating_anything(
    account: Account, step: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check runs first: the stubbed account is all they reach (no engine, no Packer
    build, no CloudFormation), and the refusal is what they say."""
    from ncaas_dev.api import cloud as cloud_api

    folder = tmp_path / "bp"
    folder.mkdir()
    (folder / "blueprint.yaml").write_text(
        "analysis: spike-q\ngroups: [{name: labA}]\nresources: {gpu: true}\n"
    )
    (folder / "Dockerfile").write_text("FROM ncaas/base:bookworm\n")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setattr(
        quotas, "account_clients", lambda region: (account.ec2, account.lambda_, account.quotas)
    )
    if step == "deploy":
        account.stubs[1].add_response("get_account_settings", NEW_LAMBDA)
    account.offers("g4dn.xlarge")
    account.quota("L-DB2E81BA", 0)
    with pytest.raises(NcaasError) as refused:
        (cloud_api.deploy if step == "deploy" else cloud_api.bake)(folder, cloud=True)
    assert "nothing was created" in refused.value.message
    assert "L-DB2E81BA" in refused.value.message
    assert ("L-B99A9384" in refused.value.message) == (step == "deploy")
    assert "ami" not in (folder / "blueprint.yaml").read_text()


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("m5.xlarge", "L-1216C47A"),
        ("i3.large", "L-1216C47A"),
        ("g4dn.xlarge", "L-DB2E81BA"),
        ("gr6.4xlarge", "L-DB2E81BA"),
        ("vt1.3xlarge", "L-DB2E81BA"),
        ("p4d.24xlarge", "L-417A185B"),
        ("inf2.xlarge", "L-1945791B"),
        ("x2iedn.xlarge", "L-7295265B"),
    ],
)
def test_each_family_counts_against_its_class(kind: str, code: str) -> None:
    assert quotas.vcpu_quota(kind).on_demand[0] == code
