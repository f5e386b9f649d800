"""The stack's ownership of the bucket, by fault injection on a stubbed CloudFormation (no
LocalStack): a stack whose create rolled back owns nothing, so a failed first deploy is not
repeated forever."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber

from ncaas_dev.cloud.deploy.cloudformation import NEVER_CREATED, StackDeployer
from ncaas_dev.cloud.deploy.names import BUCKET
from ncaas_dev.settings import Settings

NAME = "ncaas-lab"


@pytest.fixture
def deployer(tmp_path: Path) -> StackDeployer:
    settings = Settings(endpoint_url="http://127.0.0.1:9", region="us-east-1", state_dir=tmp_path)
    return StackDeployer(settings)


def _stack(status: str) -> dict[str, Any]:
    return {"StackName": NAME, "StackStatus": status}


@pytest.mark.parametrize("status", NEVER_CREATED)
def test_a_stack_never_created_owns_no_bucket_and_is_not_asked(
    deployer: StackDeployer, status: str
) -> None:
    with Stubber(deployer.cf) as stub:  # no response queued: any call would fail the test
        assert deployer.owns_bucket(NAME, _stack(status)) is False
        stub.assert_no_pending_responses()


def test_a_created_stack_owns_the_bucket_it_lists(deployer: StackDeployer) -> None:
    resource = {
        "LogicalResourceId": BUCKET,
        "ResourceType": "AWS::S3::Bucket",
        "ResourceStatus": "CREATE_COMPLETE",
        "Timestamp": "2025-01-01T00:00:00Z",
    }
    with Stubber(deployer.cf) as stub:
        stub.add_response(
            "describe_stack_resources", {"StackResources": [resource]}, {"StackName": NAME}
        )
        assert deployer.owns_bucket(NAME, _stack("UPDATE_COMPLETE")) is True
        stub.assert_no_pending_responses()


def test_no_stack_owns_nothing(deployer: StackDeployer) -> None:
    with Stubber(deployer.cf):
        assert deployer.owns_bucket(NAME, None) is False
