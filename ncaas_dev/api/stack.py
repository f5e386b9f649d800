"""The local stack: LocalStack, the dispatcher and the analyses provisioned on it.

Light to import (``status`` is run all day): heavy modules are imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

from ..launchers.names import LAUNCHERS, check_launcher
from .context import Context
from .progress import OnProgress, emit

if TYPE_CHECKING:
    from .project import BlueprintLike


__all__ = [
    "LAUNCHERS", "check_launcher", "dispatch", "dispatcher_running", "down", "status", "up"
]  # fmt: skip


class ProcessState(TypedDict):
    running: bool
    pid: int | None


class DispatcherState(ProcessState):
    launcher: str


class StackStatus(TypedDict):
    """What ``status()`` returns (and ``ncaas-dev status --json`` prints)."""

    endpoint: str | None
    endpoint_answers: bool
    localstack: ProcessState
    dispatcher: DispatcherState
    ec2_standin: ProcessState
    batch: NotRequired[dict[str, Any]]  # with the batch launcher: {"endpoint": URL, "running"}
    analyses: list[str]
    state_dir: str
    # Which kind of stack runs: "host" (`up`), "containers" (`up --containers`), "external"
    # (an endpoint this state folder did not start), or None.
    stack: str | None
    containers: NotRequired[dict[str, Any]]  # the compose stack's containers, when it runs


def status(*, endpoint_url: str | None = None) -> StackStatus:
    """What runs: LocalStack, the dispatcher (and its launcher), the analyses provisioned."""
    from ..local.status import stack_status

    doc: Any = stack_status(Context.create(endpoint_url).settings)
    return doc  # type: ignore[no-any-return]


def up(
    blueprints: Sequence[BlueprintLike] = (),
    *,
    launcher: str = "docker",
    endpoint_url: str | None = None,
    containers: bool = False,
    on_progress: OnProgress | None = None,
) -> StackStatus:
    """Start the local stack (LocalStack, the command server, the dispatcher with
    ``launcher``) and provision ``blueprints`` on it, building each image first when its
    context changed. Starting what already runs is a no-op; returns ``status()``.

    ``containers``: the same stack in containers (``docker-compose.yml``, images built
    offline); its dispatcher runs datasets with the docker launcher only."""
    from ..errors import UsageError

    ctx = Context.create(endpoint_url)
    launcher = check_launcher(launcher)
    if containers:
        from ..local.compose import up as compose_up

        if launcher != "docker":
            raise UsageError(
                "--containers runs datasets with the docker launcher only",
                hint="drop --launcher, or start the host stack (`ncaas-dev up`) for it",
            )
        emit(on_progress, "step", "starting the stack in containers")
        compose_up(ctx.settings, say=lambda line: emit(on_progress, "step", line))
    bring_up(ctx, launcher, blueprints, on_progress)
    return status(endpoint_url=endpoint_url)


class LocalContents(TypedDict):
    """What the local S3 holds: LocalStack's community edition keeps none of it across a
    restart, so ``down`` drops it all (files fetched by ``run``/``results`` stay on disk)."""

    endpoint: str
    unfinished_jobs: list[str]  # "{analysis}/{group}/{job}": queued or running
    objects: int
    bytes: int


def local_contents(*, endpoint_url: str | None = None) -> LocalContents | None:
    """What ``down`` would drop; None when no stack this state folder started answers."""
    from ..errors import NcaasError
    from ..jobstore import JobStore
    from ..layout import OPEN_PREFIX
    from ..storage import translated

    doc = status(endpoint_url=endpoint_url)
    if doc["stack"] not in ("host", "containers") or not doc["endpoint_answers"]:
        return None
    storage = Context.create(endpoint_url).storage
    found = LocalContents(endpoint=str(doc["endpoint"]), unfinished_jobs=[], objects=0, bytes=0)
    with translated("list buckets", storage.endpoint):
        buckets = [b["Name"] for b in storage.s3.list_buckets().get("Buckets", [])]
    for bucket in buckets:
        for obj in storage.list_objects(bucket, ""):
            found["objects"] += 1
            found["bytes"] += obj.size
            # The index of open jobs names the unfinished ones; a marker left behind by the
            # job's ender is checked against its status.
            group, _, job = obj.key.removeprefix(OPEN_PREFIX).partition("/")
            if not obj.key.startswith(OPEN_PREFIX) or not job:
                continue
            try:
                ended = JobStore(storage, bucket).read(group, job).state.terminal
            except (NcaasError, ValueError):
                continue
            if not ended:
                found["unfinished_jobs"].append(f"{bucket}/{group}/{job}")
    return found


def down(*, endpoint_url: str | None = None) -> dict[str, bool]:
    """Stop what ``up`` started (the compose stack first, if one runs here); per process,
    whether it was running."""
    from ..local.compose import down as compose_down
    from ..local.stack import STACK_PROCESSES, PidFile

    ctx = Context.create(endpoint_url)
    stopped: dict[str, bool] = {}
    if compose_down(ctx.settings) is not None:
        stopped["containers"] = True
    for name in STACK_PROCESSES:
        stopped[name] = PidFile(ctx.settings.state_dir, name).stop()
    if stopped.get("batch"):  # the local Batch's job containers outlive its server
        from ..local.batchserver import stop_batch_containers

        stop_batch_containers(ctx.settings.state_dir)
    return stopped


def _localstack_up(ctx: Context) -> bool:
    from ..local.stack import PidFile, endpoint_answers

    if PidFile(ctx.settings.state_dir, "localstack").read().running:
        return True
    return ctx.settings.endpoint_url is not None and endpoint_answers(ctx.settings.endpoint_url)


def dispatcher_running(*, endpoint_url: str | None = None) -> bool:
    """Whether this state folder's dispatcher process runs (its pid file; no request)."""
    from ..local.stack import PidFile

    return PidFile(Context.create(endpoint_url).settings.state_dir, "dispatcher").read().running


def dispatch(launcher: str = "docker", *, endpoint_url: str | None = None) -> None:
    """The dispatcher loop, in this process, until it is stopped: waits for LocalStack
    (``NCAAS_DISPATCH_WAIT_SECONDS``), re-queues what a dead dispatcher left queued, then
    serves every analysis on the stack (`up` runs this in the background)."""
    import logging

    from ..dispatch.dispatcher import Dispatcher
    from ..dispatch.queue import QueueLoop
    from ..launchers.factory import make_launcher
    from ..local.provision import ensure_queue
    from ..local.stack import DISPATCH_WAIT_SECONDS

    log = logging.getLogger("ncaas_dev.dispatch.dispatcher")
    launcher = check_launcher(launcher)
    ctx = Context.create(endpoint_url)
    ctx.require_own_stack()  # never serve another user's jobs
    ctx.require_stack(DISPATCH_WAIT_SECONDS, log.info)
    queue_url, _ = ensure_queue(ctx.sqs, ctx.settings.endpoint_url)
    dispatcher = Dispatcher(
        ctx.storage,
        make_launcher(launcher, ctx.settings, ctx.storage),
        ctx.settings.endpoint_url,
        ctx.settings.region,
    )
    # A local stack's submissions are few, and a misnamed file (which no event announces)
    # should be named in the log within a sweep: list them all at every sweep here.
    dispatcher.sweeper.full_listing_every = 0.0
    recovered = dispatcher.recover()
    log.info(
        "serving %s with the %s launcher; %d queued dataset(s) recovered",
        queue_url,
        launcher,
        recovered,
    )
    QueueLoop(ctx.sqs, queue_url, dispatcher).run_forever()


def bring_up(
    ctx: Context,
    launcher: str,
    blueprints: Sequence[BlueprintLike],
    on_progress: OnProgress | None = None,
) -> None:
    from ..analysis import AnalysisRecord, load_record
    from ..local.compose import containers_status
    from ..local.provision import provision
    from ..local.stack import (
        PidFile,
        start_command_server,
        start_dispatcher,
        start_localstack,
        start_standin,
    )
    from .project import cached_build, loaded

    items = [loaded(bp) for bp in blueprints]
    if launcher == "slurm":  # before anything starts: the cluster answers, partitions exist
        from ..checks.slurm import check_partition, require_slurm

        require_slurm()
        for item in items:
            check_partition(item.blueprint)
    # The compose stack (`up --containers`) runs LocalStack and the dispatcher itself.
    in_containers = containers_status(ctx.settings.state_dir) is not None
    if not in_containers:
        if not _localstack_up(ctx):  # said only when it is so: an up stack is just used
            emit(on_progress, "step", "starting LocalStack")
        start_localstack(ctx.settings)
    for item in items:
        # A changed analysis must never run as its stale image: build unless the context
        # is provably unchanged since the last build of this tag.
        image_id = cached_build(item, ctx.settings.state_dir, on_progress)
        # Provisioning again is skipped when the stack already holds this exact record.
        record = AnalysisRecord.of(item, image_id)
        if load_record(ctx.storage, record.blueprint.analysis) != record:
            provision(ctx.storage, ctx.sqs, ctx.settings, record)
    if in_containers:
        return  # the compose stack's dispatcher serves what was just provisioned
    if launcher == "ec2" and ctx.settings.local:
        start_standin(ctx.settings)
    if launcher == "batch" and ctx.settings.local:
        from ..local.batchserver import start_batch_server

        emit(on_progress, "step", "starting the local Batch server (moto)")
        start_batch_server(ctx.settings.state_dir)
    start_command_server(ctx.settings)
    info = start_dispatcher(ctx.settings, launcher)
    if info.detail.get("launcher", launcher) != launcher:
        # Runners run in sessions of their own and finish whatever the dispatcher does. The
        # stack has one dispatcher: every analysis on it now runs with the new launcher.
        emit(
            on_progress,
            "step",
            f"switching the stack's one dispatcher from the {info.detail['launcher']} launcher "
            f"to {launcher}: every analysis on this stack runs its datasets with {launcher} "
            f"from now on (`ncaas-dev up --launcher {info.detail['launcher']}` switches back)",
        )
        PidFile(ctx.settings.state_dir, "dispatcher").stop()
        start_dispatcher(ctx.settings, launcher)
