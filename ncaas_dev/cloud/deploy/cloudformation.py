"""The stack in CloudFormation: created or updated, waited for with its events shown, a stack
whose creation failed deleted first, and the first failing resource named with its reason.

LocalStack can report a stack COMPLETE after one of its resources failed, so the resource
events decide whether it worked.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ...aws import client, iam_client, s3_client
from ...errors import NcaasError
from ...settings import Settings
from ...storage import Storage
from ..aws_errors import NO_CREDENTIALS_HINT, aws_error
from .names import BUCKET

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_iam import IAMClient

POLL_SECONDS = 1.0
STACK_TIMEOUT_S = 1800
# A stack whose creation failed can only be deleted (then created anew).
NEVER_CREATED = ("ROLLBACK_COMPLETE", "CREATE_FAILED")
FAILED_STATES = ("CREATE_FAILED", "UPDATE_FAILED", "DELETE_FAILED", "IMPORT_FAILED")
OnEvent = Callable[[dict[str, Any]], None]


def deploy_error(what: str, e: Exception, settings: Settings) -> NcaasError:
    """A failed AWS call of the deploy as one line (``aws_errors``), with deploy's hint for
    missing credentials."""
    return aws_error(what, e, settings.endpoint_url, NO_CREDENTIALS_HINT)


class StackDeployer:
    def __init__(self, settings: Settings, on_event: OnEvent | None = None) -> None:
        self.settings = settings
        self.cf: CloudFormationClient = client(settings, "cloudformation")
        self.iam: IAMClient = iam_client(settings)
        self.storage = Storage(s3_client(settings), settings.endpoint_url)
        self.on_event = on_event or (lambda _: None)

    # -- the stack ---------------------------------------------------------------------------
    def describe(self, name: str) -> dict[str, Any] | None:
        try:
            stacks = self.cf.describe_stacks(StackName=name)["Stacks"]
        except ClientError as e:
            if "does not exist" in str(e):
                return None
            raise deploy_error(f"DescribeStacks {name}", e, self.settings) from e
        except BotoCoreError as e:
            raise deploy_error(f"DescribeStacks {name}", e, self.settings) from e
        if not stacks or stacks[0]["StackStatus"] == "DELETE_COMPLETE":
            return None  # LocalStack still describes deleted stacks
        return dict(stacks[0])

    def created(self, name: str) -> dict[str, Any] | None:
        """The stack if it was ever created; one whose create failed is deleted first, with
        whatever its rollback left (LocalStack may not roll back at all)."""
        stack = self.describe(name)
        if stack is not None and stack["StackStatus"] in NEVER_CREATED:
            self._delete(name)
            return None
        return stack

    def owns_bucket(self, name: str, stack: dict[str, Any] | None) -> bool:
        """Whether the stack ``stack`` (as described) holds the bucket. A stack that was never
        created owns nothing: its rollback left the bucket behind, and the next create must not
        take the bucket as the stack's (it would try to create it again, and fail, forever)."""
        if stack is None or stack["StackStatus"] in NEVER_CREATED:
            return False
        try:
            resources = self.cf.describe_stack_resources(StackName=name)["StackResources"]
        except ClientError:
            return False
        return any(r["LogicalResourceId"] == BUCKET for r in resources)

    def apply(self, name: str, template: dict[str, Any]) -> str:
        """Create or update; returns created | updated | unchanged once the stack settled."""
        existing = self.describe(name)
        if existing is not None and existing["StackStatus"] in NEVER_CREATED:
            # A stack whose creation failed can only be deleted: do that, then create anew.
            self._delete(name)
            existing = None
        if existing is not None and existing["StackStatus"].endswith("_IN_PROGRESS"):
            raise NcaasError(
                f"stack {name} is busy ({existing['StackStatus']})",
                hint="wait for it to settle, then deploy again",
            )
        body = json.dumps(template)
        args: dict[str, Any] = {
            "StackName": name,
            "TemplateBody": body,
            "Capabilities": ["CAPABILITY_NAMED_IAM"],
            "Tags": [{"Key": "ncaas:stack", "Value": name}],
        }
        since = datetime.now(UTC)
        if existing is None:
            self._call("CreateStack", lambda: self.cf.create_stack(**args))
            action = "created"
        else:
            try:
                self.cf.update_stack(**args)
            except ClientError as e:
                if "No updates are to be performed" in str(e):
                    return "unchanged"
                raise deploy_error(f"UpdateStack {name}", e, self.settings) from e
            except BotoCoreError as e:
                raise deploy_error(f"UpdateStack {name}", e, self.settings) from e
            action = "updated"
        status = self._wait(name, since)
        # LocalStack can report a stack COMPLETE after one of its resources failed: the
        # resource events decide.
        if status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE") or self._failed(name, since):
            raise NcaasError(
                f"stack {name} ended {status}: {self._failure(name, since)}",
                hint="fix what the failing resource says, then deploy again",
            )
        return action

    def _call(self, what: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except (ClientError, BotoCoreError) as e:
            raise deploy_error(what, e, self.settings) from e

    def _events(self, name: str, since: datetime) -> list[dict[str, Any]]:
        try:
            events = self.cf.describe_stack_events(StackName=name)["StackEvents"]
        except ClientError:
            return []  # a deleted stack has no events left
        new = [dict(e) for e in events if e["Timestamp"] >= since]
        return sorted(new, key=lambda e: e["Timestamp"])

    def _wait(self, name: str, since: datetime) -> str:
        seen: set[str] = set()
        deadline = time.monotonic() + STACK_TIMEOUT_S
        while True:
            for event in self._events(name, since):
                if event["EventId"] not in seen:
                    seen.add(event["EventId"])
                    self.on_event(event)
            stack = self.describe(name)
            if stack is None:
                return "DELETE_COMPLETE"
            status = str(stack["StackStatus"])
            if not status.endswith("_IN_PROGRESS"):
                return status
            if time.monotonic() > deadline:
                raise NcaasError(f"stack {name} still {status} after {STACK_TIMEOUT_S} s")
            time.sleep(POLL_SECONDS)

    def _delete(self, name: str) -> None:
        """Delete a stack that never got created; LocalStack may need a second request."""
        deadline = time.monotonic() + STACK_TIMEOUT_S
        status = ""
        for _attempt in range(3):
            self._call("DeleteStack", lambda: self.cf.delete_stack(StackName=name))
            while (stack := self.describe(name)) is not None:
                status = str(stack["StackStatus"])
                if status == "DELETE_FAILED" or time.monotonic() > deadline:
                    break
                time.sleep(POLL_SECONDS)
            else:
                return
            time.sleep(POLL_SECONDS)
        raise NcaasError(
            f"stack {name} failed before and cannot be deleted ({status})",
            hint=f"delete it (aws cloudformation delete-stack --stack-name {name})",
        )

    def _failed(self, name: str, since: datetime) -> list[dict[str, Any]]:
        return [
            e
            for e in self._events(name, since)
            if e.get("ResourceStatus") in FAILED_STATES
            and e.get("ResourceType") != "AWS::CloudFormation::Stack"
            and e.get("ResourceStatusReason")
        ]

    def _failure(self, name: str, since: datetime) -> str:
        """The first resource that failed, with CloudFormation's reason."""
        for event in self._failed(name, since):
            return (
                f"{event['LogicalResourceId']} ({event.get('ResourceType')}): "
                f"{event.get('ResourceStatusReason')}"
            )
        stack = self.describe(name) or {}
        return str(stack.get("StackStatusReason") or "no reason given")

    def stack_resources(self, name: str) -> list[dict[str, str]]:
        found = self._call(
            "DescribeStackResources", lambda: self.cf.describe_stack_resources(StackName=name)
        )["StackResources"]
        return [
            {
                "logical_id": r.get("LogicalResourceId", ""),
                "type": r.get("ResourceType", ""),
                "physical_id": r.get("PhysicalResourceId", ""),
                "status": r.get("ResourceStatus", ""),
            }
            for r in found
        ]
