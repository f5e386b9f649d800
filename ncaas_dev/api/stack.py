"""The local stack: LocalStack, the dispatcher and the analyses provisioned on it.

Light to import (``status`` is run all day): heavy modules are imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypedDict

from .context import Context
from .progress import OnProgress, emit

if TYPE_CHECKING:
    from .project import BlueprintLike


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
    analyses: list[str]
    state_dir: str


def status(*, endpoint_url: str | None = None) -> StackStatus:
    """What runs: LocalStack, the dispatcher (and its launcher), the analyses provisioned."""
    from ..stack_status import stack_status

    doc: Any = stack_status(Context.create(endpoint_url).settings)
    return doc  # type: ignore[no-any-return]


def up(
    blueprints: Sequence[BlueprintLike] = (),
    *,
    launcher: str = "docker",
    endpoint_url: str | None = None,
    on_progress: OnProgress | None = None,
) -> StackStatus:
    """Start the local stack (LocalStack, the command server, the dispatcher with
    ``launcher``) and provision ``blueprints`` on it, building each image first when its
    context changed. Starting what already runs is a no-op; returns ``status()``."""
    from ..cli.common import check_launcher

    ctx = Context.create(endpoint_url)
    bring_up(ctx, check_launcher(launcher), blueprints, on_progress)
    return status(endpoint_url=endpoint_url)


def down(*, endpoint_url: str | None = None) -> dict[str, bool]:
    """Stop what ``up`` started; per process, whether it was running."""
    from ..stack import STACK_PROCESSES, PidFile

    ctx = Context.create(endpoint_url)
    return {name: PidFile(ctx.settings.state_dir, name).stop() for name in STACK_PROCESSES}


def bring_up(
    ctx: Context,
    launcher: str,
    blueprints: Sequence[BlueprintLike],
    on_progress: OnProgress | None = None,
) -> None:
    from ..analysis import AnalysisRecord, load_record
    from ..provision import provision
    from ..stack import (
        PidFile,
        start_command_server,
        start_dispatcher,
        start_localstack,
        start_standin,
    )
    from .project import cached_build, loaded

    items = [loaded(bp) for bp in blueprints]
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
    if launcher == "ec2" and ctx.settings.local:
        start_standin(ctx.settings)
    start_command_server(ctx.settings)
    info = start_dispatcher(ctx.settings, launcher)
    if info.detail.get("launcher", launcher) != launcher:
        # Runners run in sessions of their own and finish whatever the dispatcher does.
        emit(on_progress, "step", f"switching the dispatcher from {info.detail['launcher']}")
        PidFile(ctx.settings.state_dir, "dispatcher").stop()
        start_dispatcher(ctx.settings, launcher)
