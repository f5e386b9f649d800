"""``ncaas-dev deploy``: the analysis's stack, created or updated, then checked for real.

The template comes from the blueprint (``template.py``). On LocalStack the stack leaves the
Lambda dispatcher out (LocalStack community cannot run it; see docs/deploy.md) and the
bucket's notifications go to the local SQS queue through the usual provisioning, so the local
dispatcher loop serves the analysis. On AWS the dispatcher's code is packaged, uploaded to the
bucket's ``.ncaas/artifacts/`` and the Lambda takes over.

LocalStack's CloudFormation reports resources it does not implement as created, so after the
stack settles every resource is looked up in its own service (``verify.py``); what is missing
is reported. The stack itself is handled in ``cloudformation.py``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ...analysis import AnalysisRecord, load_record, save_record
from ...aws import client, sqs_client
from ...blueprint import LoadedBlueprint
from ...errors import UsageError
from ...layout import GROUP_FOLDERS, group_prefix
from ...settings import Settings
from ...storage import Storage
from ..layout import StackRecord, save_stack_record
from . import template as t
from .bucket import bucket_is_ours, notify_lambda, secure_bucket
from .cloudformation import OnEvent, StackDeployer, deploy_error
from .names import instance_profile_name, stack_name
from .package import build_package, upload_artifact
from .verify import Check, verify


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


def _outputs(stack: dict[str, Any]) -> dict[str, str]:
    return {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs", [])}


def _record_for(storage: Storage, loaded: LoadedBlueprint) -> AnalysisRecord:
    """The analysis record: the stack's own if it describes this blueprint (keeps its image
    id, which `run`/`up` set), else a new one."""
    previous = load_record(storage, loaded.blueprint.bucket)
    if previous is not None and previous.content_hash == loaded.content_hash:
        return previous
    return AnalysisRecord.of(loaded, previous.image_id if previous else None)


def batch_options(loaded: LoadedBlueprint, storage: Storage) -> Any:
    """The Batch part of the stack, on AWS, for a blueprint that has a `batch:` section (opt-in:
    a compute environment needs subnets, docs/batch.md); None otherwise."""
    blueprint = loaded.blueprint
    if "batch" not in blueprint.model_fields_set:
        return None
    if not blueprint.cloud.subnet_id:
        raise UsageError(
            f"{loaded.folder}/blueprint.yaml: field 'cloud.subnet_id': the batch: section "
            "needs the subnet its hosts start in",
            hint="set cloud.subnet_id (docs/batch.md, the real-account checklist)",
        )
    from .batch import BatchOptions

    image_id = _record_for(storage, loaded).image_id or "unbuilt"
    return BatchOptions(image_id=image_id, content_hash=loaded.content_hash)


def deploy(
    loaded: LoadedBlueprint, settings: Settings, on_event: OnEvent | None = None
) -> DeployResult:
    """Create or update the analysis's stack, make the bucket ready, check what exists."""
    started = time.monotonic()
    blueprint = loaded.blueprint
    bucket = blueprint.bucket  # cloud.bucket, else the analysis name
    name = stack_name(blueprint.analysis)
    deployer = StackDeployer(settings, on_event)
    storage = deployer.storage
    existing = deployer.created(name)
    stack_has_bucket = deployer.owns_bucket(name, existing)
    # A bucket made outside the stack (by `run`/`up`, or by hand) stays outside it: AWS
    # refuses to create a bucket that exists, so the stack references it by name instead.
    in_stack = stack_has_bucket or not bucket_is_ours(storage, bucket)
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
        if not bucket_is_ours(storage, bucket):
            # The code goes into the bucket the stack creates: the stack without its Lambda
            # first, then the Lambda once the code lies there.
            action = deployer.apply(name, t.render_template(blueprint, t.TemplateOptions()))
        package_info["upload"] = upload_artifact(storage, bucket, package)
    options = t.TemplateOptions(
        bucket=in_stack,
        dispatcher=code,
        cognito=not settings.local,
        batch=None if settings.local else batch_options(loaded, storage),
    )
    second = deployer.apply(name, t.render_template(blueprint, options))
    action = second if action == "unchanged" else action
    stack = deployer.describe(name) or {}
    outputs = _outputs(stack)
    if not in_stack or settings.local:
        # LocalStack's CloudFormation drops some bucket properties (the lifecycle rule), so
        # locally the settings are applied directly as well; they are idempotent.
        secure_bucket(storage, bucket)
    record = _record_for(storage, loaded)
    if settings.local:
        from ...local.provision import provision

        provision(storage, sqs_client(settings), settings, record, bucket)  # folders, queue, record
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
        save_record(storage, record, bucket)
    function_name = outputs.get("DispatcherFunctionName")
    save_stack_record(
        storage,
        bucket,
        StackRecord(
            stack_name=name,
            instance_profile=outputs.get(
                "InstanceProfileName", instance_profile_name(blueprint.analysis)
            ),
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
        raise deploy_error(f"GetFunction {function}", e, settings) from e
