"""``ncaas-dev deploy``: the analysis's stack, created or updated, then checked for real.

The template comes from the blueprint (``template.py``). On LocalStack the stack leaves the
Lambda dispatcher out (LocalStack community cannot run it; see docs/deploy.md) and the
bucket's notifications go to the local SQS queue through the usual provisioning, so the local
dispatcher loop serves the analysis. On AWS the dispatcher's code is packaged, uploaded to the
bucket's ``.ncaas/artifacts/`` and the Lambda takes over.

LocalStack's CloudFormation reports resources it does not implement as created, so after the
stack settles every resource is looked up in its own service; what is missing is reported.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from ...analysis import AnalysisRecord, load_record, save_record
from ...aws import client, iam_client, s3_client, sqs_client
from ...blueprint import LoadedBlueprint
from ...errors import NcaasError, ServiceUnavailable
from ...layout import GROUP_FOLDERS, SUBMISSION_SUFFIX, group_prefix
from ...settings import Settings
from ...storage import Storage
from ..layout import StackRecord, save_stack_record
from . import template as t
from .package import build_package

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_iam import IAMClient

POLL_SECONDS = 1.0
STACK_TIMEOUT_S = 1800
# A stack whose creation failed can only be deleted (then created anew).
NEVER_CREATED = ("ROLLBACK_COMPLETE", "CREATE_FAILED")
FAILED_STATES = ("CREATE_FAILED", "UPDATE_FAILED", "DELETE_FAILED", "IMPORT_FAILED")
OnEvent = Callable[[dict[str, Any]], None]


@dataclass
class Check:
    """One resource looked up in its own service after the stack settled."""

    logical_id: str
    kind: str
    name: str
    present: bool
    detail: str = ""


@dataclass
class DeployResult:
    stack_name: str
    status: str
    action: str  # created | updated | unchanged
    local: bool
    region: str
    bucket_in_stack: bool
    dispatcher: str  # "lambda <name>" or "local SQS loop"
    resources: list[dict[str, str]] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    package: dict[str, Any] | None = None
    seconds: float = 0.0

    @property
    def missing(self) -> list[Check]:
        return [c for c in self.checks if not c.present]

    def as_json(self) -> dict[str, Any]:
        return {
            "stack_name": self.stack_name,
            "status": self.status,
            "action": self.action,
            "target": "localstack" if self.local else "aws",
            "region": self.region,
            "bucket_in_stack": self.bucket_in_stack,
            "dispatcher": self.dispatcher,
            "resources": self.resources,
            "checks": [c.__dict__ for c in self.checks],
            "missing": [c.logical_id for c in self.missing],
            "outputs": self.outputs,
            "package": self.package,
            "seconds": round(self.seconds, 2),
        }


def _error(what: str, e: Exception, settings: Settings) -> NcaasError:
    if isinstance(e, ClientError):
        error = e.response.get("Error", {})
        return NcaasError(f"{what} failed: {error.get('Code', 'error')}: {error.get('Message')}")
    if isinstance(e, NoCredentialsError):
        return NcaasError(
            f"{what} failed: no AWS credentials",
            hint="set AWS_PROFILE or run `aws configure` (or drop --cloud for LocalStack)",
        )
    if settings.endpoint_url and "Could not connect" in str(e):
        return ServiceUnavailable(
            f"LocalStack does not answer at {settings.endpoint_url}",
            hint="start it with `ncaas-dev up`",
        )
    return NcaasError(f"{what} failed: {e}")


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
            raise _error(f"DescribeStacks {name}", e, self.settings) from e
        except BotoCoreError as e:
            raise _error(f"DescribeStacks {name}", e, self.settings) from e
        if not stacks or stacks[0]["StackStatus"] == "DELETE_COMPLETE":
            return None  # LocalStack still describes deleted stacks
        return dict(stacks[0])

    def owns_bucket(self, name: str) -> bool:
        try:
            resources = self.cf.describe_stack_resources(StackName=name)["StackResources"]
        except ClientError:
            return False
        return any(r["LogicalResourceId"] == t.BUCKET for r in resources)

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
                raise _error(f"UpdateStack {name}", e, self.settings) from e
            except BotoCoreError as e:
                raise _error(f"UpdateStack {name}", e, self.settings) from e
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
            raise _error(what, e, self.settings) from e

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


def _outputs(stack: dict[str, Any]) -> dict[str, str]:
    return {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs", [])}


def secure_bucket(storage: Storage, bucket: str, endpoint: str | None) -> None:
    """What the template sets on a bucket it owns, for a bucket it found already there."""
    from ...storage import translated

    with translated(f"secure bucket {bucket}", endpoint):
        storage.s3.put_public_access_block(
            Bucket=bucket,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        storage.s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
        storage.s3.put_bucket_lifecycle_configuration(
            Bucket=bucket,
            LifecycleConfiguration={
                "Rules": [
                    {
                        "ID": "abort-incomplete-uploads",
                        "Status": "Enabled",
                        "Filter": {"Prefix": ""},
                        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                    }
                ]
            },
        )


def notify_lambda(storage: Storage, loaded: LoadedBlueprint, function_arn: str) -> None:
    """Submission notifications to the Lambda, for a bucket the stack does not own."""
    from ...storage import translated

    rules = [
        {
            "Id": f"ncaas-{g.name}",
            "LambdaFunctionArn": function_arn,
            "Events": ["s3:ObjectCreated:*"],
            "Filter": {
                "Key": {
                    "FilterRules": [
                        {"Name": "prefix", "Value": group_prefix(g.name, "submissions")},
                        {"Name": "suffix", "Value": SUBMISSION_SUFFIX},
                    ]
                }
            },
        }
        for g in loaded.blueprint.groups
    ]
    bucket = loaded.blueprint.analysis
    with translated(f"set notifications on {bucket}", storage.endpoint):
        storage.s3.put_bucket_notification_configuration(
            Bucket=bucket,
            NotificationConfiguration={"LambdaFunctionConfigurations": rules},  # type: ignore[typeddict-item]
        )


def _record_for(storage: Storage, loaded: LoadedBlueprint) -> AnalysisRecord:
    """The analysis record: the stack's own if it describes this blueprint (keeps its image
    id, which `run`/`up` set), else a new one."""
    previous = load_record(storage, loaded.blueprint.analysis)
    if previous is not None and previous.content_hash == loaded.content_hash:
        return previous
    return AnalysisRecord.of(loaded, previous.image_id if previous else None)


def deploy(
    loaded: LoadedBlueprint, settings: Settings, on_event: OnEvent | None = None
) -> DeployResult:
    """Create or update the analysis's stack, make the bucket ready, check what exists."""
    started = time.monotonic()
    blueprint = loaded.blueprint
    bucket = blueprint.analysis
    name = t.stack_name(bucket)
    deployer = StackDeployer(settings, on_event)
    storage = deployer.storage
    existing = deployer.describe(name)
    stack_has_bucket = existing is not None and deployer.owns_bucket(name)
    # A bucket made outside the stack (by `run`/`up`, or by hand) stays outside it: AWS
    # refuses to create a bucket that exists, so the stack references it by name instead.
    in_stack = stack_has_bucket or not storage.bucket_exists(bucket)
    package_info: dict[str, Any] | None = None
    code: t.CodeLocation | None = None
    action = "unchanged"
    if not settings.local:
        package = build_package(settings.state_dir / "deploy" / "package")
        package_info = {
            "key": package.key,
            "sha256": package.digest,
            "built": package.built,
            "seconds": round(package.seconds, 2),
            "bytes": package.path.stat().st_size,
        }
        code = t.CodeLocation(bucket, package.key)
        if not storage.bucket_exists(bucket):
            # The code goes into the bucket the stack creates: the stack without its Lambda
            # first, then the Lambda once the code lies there.
            action = deployer.apply(name, t.render_template(blueprint, t.TemplateOptions()))
        if storage.head(bucket, package.key) is None:
            storage.upload_file(package.path, bucket, package.key)
    options = t.TemplateOptions(bucket=in_stack, dispatcher=code)
    second = deployer.apply(name, t.render_template(blueprint, options))
    action = second if action == "unchanged" else action
    stack = deployer.describe(name) or {}
    outputs = _outputs(stack)
    if not in_stack or settings.local:
        # LocalStack's CloudFormation drops some bucket properties (the lifecycle rule), so
        # locally the settings are applied directly as well; they are idempotent.
        secure_bucket(storage, bucket, settings.endpoint_url)
    record = _record_for(storage, loaded)
    if settings.local:
        from ...provision import provision

        provision(storage, sqs_client(settings), settings, record)  # folders, queue, record
    else:
        for group in blueprint.groups:
            for folder in GROUP_FOLDERS:
                prefix = group_prefix(group.name, folder)
                if storage.head(bucket, prefix) is None:
                    storage.put_bytes(bucket, prefix, b"")
        if not in_stack and code is not None:
            function = outputs.get("DispatcherFunctionName", "")
            arn = _function_arn(settings, function)
            notify_lambda(storage, loaded, arn)
        save_record(storage, record)
    function_name = outputs.get("DispatcherFunctionName")
    save_stack_record(
        storage,
        bucket,
        StackRecord(
            stack_name=name,
            instance_profile=outputs.get("InstanceProfileName", t.instance_profile_name(bucket)),
            dispatcher_function=function_name,
            outputs=outputs,
        ),
    )
    resources = deployer.stack_resources(name)
    checks = verify(settings, loaded, resources, deployer.iam, storage)
    return DeployResult(
        stack_name=name,
        status=str(stack.get("StackStatus", "")),
        action=action,
        local=settings.local,
        region=settings.region,
        bucket_in_stack=in_stack,
        dispatcher=f"lambda {function_name}" if function_name else "local SQS loop",
        resources=resources,
        checks=checks,
        outputs=outputs,
        package=package_info,
        seconds=time.monotonic() - started,
    )


def _function_arn(settings: Settings, function: str) -> str:
    lam = client(settings, "lambda")
    try:
        return str(lam.get_function(FunctionName=function)["Configuration"]["FunctionArn"])
    except (ClientError, BotoCoreError) as e:
        raise _error(f"GetFunction {function}", e, settings) from e


# -- what really exists ------------------------------------------------------------------------
def _check_bucket(storage: Storage, bucket: str) -> tuple[bool, str]:
    s3 = storage.s3
    if not storage.bucket_exists(bucket):
        return False, "no bucket"
    problems = []
    try:
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        if not all(block.values()):
            problems.append("public access not fully blocked")
    except ClientError:
        problems.append("no public access block")
    try:
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
        if not rules.get("Rules"):
            problems.append("no default encryption")
    except ClientError:
        problems.append("no default encryption")
    return not problems, "; ".join(problems) or "public access blocked, SSE-S3"


def _check_notifications(settings: Settings, storage: Storage, loaded: LoadedBlueprint) -> Check:
    """Submissions reach a dispatcher: the local queue on LocalStack, else the Lambda."""
    bucket = loaded.blueprint.analysis
    try:
        config = storage.s3.get_bucket_notification_configuration(Bucket=bucket)
    except ClientError as e:
        code = str(e.response.get("Error", {}).get("Code"))
        return Check("(notifications)", "S3 notification", bucket, False, code)
    if settings.local:
        queues = [q["QueueArn"].rsplit(":", 1)[-1] for q in config.get("QueueConfigurations", [])]
        return Check(
            "(notifications)", "S3 notification", bucket, bool(queues),
            f"submissions -> SQS {', '.join(queues) or 'nothing'} (local dispatcher loop)",
        )  # fmt: skip
    rules = config.get("LambdaFunctionConfigurations", [])
    groups = len(loaded.blueprint.groups)
    return Check(
        "(notifications)", "S3 notification", bucket, len(rules) == groups,
        f"{len(rules)} of {groups} group submission rules -> Lambda",
    )  # fmt: skip


def _look_up(iam: IAMClient, kind: str, name: str) -> tuple[bool, str]:
    """Whether an IAM resource exists as the stack says, with what it holds."""
    if kind == "AWS::IAM::Role":
        iam.get_role(RoleName=name)
        policies = iam.list_role_policies(RoleName=name)["PolicyNames"]
        return bool(policies), f"inline policies: {', '.join(policies) or 'none'}"
    if kind == "AWS::IAM::InstanceProfile":
        profile = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
        roles = [x["RoleName"] for x in profile["Roles"]]
        return bool(roles), f"roles: {', '.join(roles) or 'none'}"
    if kind == "AWS::IAM::Group":
        users = [u["UserName"] for u in iam.get_group(GroupName=name)["Users"]]
        policies = iam.list_group_policies(GroupName=name)["PolicyNames"]
        detail = f"users: {', '.join(users) or 'none'}; policies: {', '.join(policies) or 'none'}"
        return bool(policies), detail
    if kind == "AWS::IAM::User":
        groups = [g["GroupName"] for g in iam.list_groups_for_user(UserName=name)["Groups"]]
        return bool(groups), f"in group {', '.join(groups) or 'none'}"
    return True, "not checked"


def verify(
    settings: Settings,
    loaded: LoadedBlueprint,
    resources: list[dict[str, str]],
    iam: IAMClient,
    storage: Storage,
) -> list[Check]:
    """Look every stack resource up in its own service (LocalStack may have faked it)."""
    bucket = loaded.blueprint.analysis
    checks = [Check("(bucket)", "AWS::S3::Bucket", bucket, *_check_bucket(storage, bucket))]
    checks.append(_check_notifications(settings, storage, loaded))
    for r in resources:
        kind, physical, logical = r["type"], r["physical_id"], r["logical_id"]
        if kind == "AWS::S3::Bucket":
            continue  # checked above, in or out of the stack
        try:
            if kind == "AWS::Lambda::Function":
                lam = client(settings, "lambda")
                config = lam.get_function(FunctionName=physical)["Configuration"]
                present = config.get("State") == "Active"
                detail = f"state {config.get('State')} {config.get('StateReason', '')}".strip()
            else:
                present, detail = _look_up(iam, kind, physical)
        except ClientError as e:
            present, detail = False, str(e.response.get("Error", {}).get("Code", "error"))
        checks.append(Check(logical, kind, physical, present, detail))
    return checks
