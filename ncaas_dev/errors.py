"""One root error; each subclass carries the exit code the CLI must use.

Adapters translate botocore and docker errors into these with ``raise ... from e``;
the CLI prints ``message`` (and ``hint``) in one line and exits with ``exit_code``.
"""

from __future__ import annotations


class NcaasError(Exception):
    """Root of every error ncaas-dev reports to a user."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(NcaasError):
    """Bad usage or bad input given on the command line (exit 2)."""

    exit_code = 2


class BlueprintError(UsageError):
    """A blueprint that cannot be loaded: names the file, the field and the problem."""


class ServiceUnavailable(NcaasError):
    """Docker or the local stack does not answer."""


class StorageError(NcaasError):
    """An S3 or SQS operation failed."""


class JobFailed(NcaasError):
    """A job ended in any state but succeeded."""


class JobTimeout(NcaasError):
    """A job did not end within the time a caller waited for it (``Job.wait(timeout=...)``)."""
