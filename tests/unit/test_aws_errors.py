"""One line per failed AWS call, shared by the EC2 path and deploy."""

from __future__ import annotations

from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from ncaas_dev.cloud.aws_errors import aws_error
from ncaas_dev.cloud.deploy.cloudformation import NO_CREDENTIALS_HINT
from ncaas_dev.errors import ServiceUnavailable

ENDPOINT = "http://127.0.0.1:4566"


def test_a_client_error_says_aws_code_and_message() -> None:
    e = ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "RunInstances")
    assert aws_error("RunInstances", e, None).message == "RunInstances failed: AccessDenied: no"


def test_localstack_down_is_service_unavailable() -> None:
    e = EndpointConnectionError(endpoint_url=ENDPOINT)
    error = aws_error("DescribeStacks x", e, ENDPOINT)
    assert isinstance(error, ServiceUnavailable)
    assert ENDPOINT in error.message and error.hint == "start it with `ncaas-dev up`"


def test_missing_credentials_get_their_hint_only_when_the_caller_has_one() -> None:
    e = NoCredentialsError()
    assert aws_error("CreateStack", e, None).hint is None
    told = aws_error("CreateStack", e, None, NO_CREDENTIALS_HINT)
    assert told.message == "CreateStack failed: no AWS credentials"
    assert told.hint == NO_CREDENTIALS_HINT


def test_an_s3_refusal_names_the_iam_action_and_resource() -> None:
    from ncaas_dev.storage import AccessDenied, translated

    denied = {"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}
    cases = [
        ("ListObjectsV2", "list s3://b/in/d/", "s3:ListBucket on arn:aws:s3:::b (prefix 'in/d/')"),
        ("HeadObject", "s3://b/labA/x.bin", "s3:GetObject on arn:aws:s3:::b/labA/x.bin"),
        ("PutObject", "write s3://b/labB/inputs/x", "s3:PutObject on arn:aws:s3:::b/labB/inputs/x"),
    ]  # fmt: skip
    for operation, what, needed in cases:
        try:
            with translated(what, None):
                raise ClientError(denied, operation)  # type: ignore[arg-type]
        except AccessDenied as e:
            assert f"{needed} is not allowed to these credentials" in e.message
        else:
            raise AssertionError("not translated")
