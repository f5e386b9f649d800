"""A failed AWS call said in one line, the same way across the cloud path: AWS's error code
(which users can look up), or LocalStack not answering, or missing credentials."""

from __future__ import annotations

from botocore.exceptions import ClientError, NoCredentialsError

from ..errors import NcaasError, ServiceUnavailable

# What `deploy --cloud` and `bake --cloud` say when no credentials are found.
NO_CREDENTIALS_HINT = "set AWS_PROFILE or run `aws configure` (or drop --cloud for LocalStack)"


def aws_error(
    what: str, e: Exception, endpoint: str | None, no_credentials_hint: str | None = None
) -> NcaasError:
    """``e`` (a ClientError or BotoCoreError of ``what``) as an NcaasError; missing credentials
    get their own line only when the caller has a hint for them."""
    if isinstance(e, ClientError):
        error = e.response.get("Error", {})
        code, message = error.get("Code", "error"), error.get("Message", str(e))
        return NcaasError(f"{what} failed: {code}: {message}")
    if no_credentials_hint is not None and isinstance(e, NoCredentialsError):
        return NcaasError(f"{what} failed: no AWS credentials", hint=no_credentials_hint)
    if endpoint and "Could not connect" in str(e):
        return ServiceUnavailable(
            f"LocalStack does not answer at {endpoint}", hint="start it with `ncaas-dev up`"
        )
    return NcaasError(f"{what} failed: {e}")
