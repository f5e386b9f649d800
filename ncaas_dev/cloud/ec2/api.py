"""EC2 as the launcher and the stand-in both see it: a client per region, instances by filter,
and errors translated into one line with AWS's error code.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ...settings import Settings
from ..aws_errors import aws_error

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

# Instances that still count against the cap (and that the stand-in runs).
LIVE_STATES = ["pending", "running", "stopping"]


@contextmanager
def ec2_errors(what: str, endpoint: str | None) -> Iterator[None]:
    """EC2/IAM errors as one line with AWS's error code, which users can look up."""
    try:
        yield
    except (ClientError, BotoCoreError) as e:
        raise aws_error(what, e, endpoint) from e


class Ec2Regions:
    """One EC2 client per region: each analysis runs in its blueprint's ``cloud.region``."""

    def __init__(self, settings: Settings, ec2: EC2Client | None = None) -> None:
        from ...aws import ec2_client

        self.settings = settings
        self._clients: dict[str, EC2Client] = {settings.region: ec2 or ec2_client(settings)}

    def client(self, region: str) -> EC2Client:
        if region not in self._clients:
            from ...aws import ec2_client

            self._clients[region] = ec2_client(replace(self.settings, region=region))
        return self._clients[region]

    @property
    def known(self) -> list[str]:
        """The regions asked for so far, the stack's own first."""
        return list(self._clients)

    def errors(self, what: str) -> Any:
        return ec2_errors(what, self.settings.endpoint_url)

    def instances(self, region: str, **filters: list[str]) -> Iterator[dict[str, Any]]:
        """Instances matching ``filters`` (``tag_key=[...]`` is the filter ``tag-key``)."""
        query = [{"Name": k.replace("_", "-"), "Values": v} for k, v in filters.items()]
        with self.errors("DescribeInstances"):
            pages = self.client(region).get_paginator("describe_instances")
            for page in pages.paginate(Filters=query):  # type: ignore[arg-type]
                for reservation in page["Reservations"]:
                    yield from reservation["Instances"]  # type: ignore[misc]
