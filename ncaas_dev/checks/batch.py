"""Can the Batch launcher run here? The checks `doctor --launcher batch` prints: the local
Batch server (moto's, started by `up --launcher batch`) answers, and the image its jobs run
the runner in is on the Docker engine (nothing can be pulled here)."""

from __future__ import annotations

from pathlib import Path

from .doctor import Check, Level, _guarded

SERVER_FIX = "ncaas-dev up --launcher batch starts it beside LocalStack"


def check_server(state_dir: Path) -> Check:
    from ..local.batchserver import batch_endpoint
    from ..local.stack import endpoint_answers

    endpoint = batch_endpoint(state_dir)
    if endpoint is None:
        return Check("batch server", Level.FAIL, "no local Batch server runs", SERVER_FIX)
    if not endpoint_answers(endpoint, timeout=2):
        return Check("batch server", Level.FAIL, f"nothing answers at {endpoint}", SERVER_FIX)
    return Check("batch server", Level.OK, f"answers at {endpoint}")


def check_runner_image() -> Check:
    from ..containers import connect
    from ..launchers.batchenv import RUNNER_IMAGE

    images = connect().images.list(name=RUNNER_IMAGE)
    if not images:
        return Check(
            "batch runner image",
            Level.FAIL,
            f"{RUNNER_IMAGE}, the image Batch jobs run the runner in, is not on this engine",
            "make base-image builds it (images/base/build.sh; nothing is pulled)",
        )
    return Check("batch runner image", Level.OK, f"{RUNNER_IMAGE} present")


def batch_checks(state_dir: Path) -> list[Check]:
    return [
        _guarded("batch server", lambda: check_server(state_dir)),
        _guarded("batch runner image", check_runner_image),
    ]
