"""The runner's image for Batch jobs on a baked AMI (``ncaas/runner:baked``, which the job
definition names): built here from the bake's own wheelhouse, offline, and shipped in the
payload beside the analysis image (images/ami/runner/Dockerfile says what is in it)."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from ...containers import Engine
from ...errors import NcaasError
from ..layout import RUNNER_IMAGE
from .packer import RECIPE_DIR
from .payload import Reporter, link_or_copy, save_image

DOCKERFILE = RECIPE_DIR / "runner" / "Dockerfile"


def build_runner_image(
    engine: Engine, wheels: list[Path], version: str, folder: Path, say: Reporter
) -> tuple[str, Path, str]:
    """Build ``RUNNER_IMAGE`` with ncaas-dev ``version`` from ``wheels`` (``--network none``),
    then save it into ``folder``; returns its image id, the archive and the archive's sha256."""
    say.step(f"building {RUNNER_IMAGE} (the runner of Batch jobs, --network none)")
    with tempfile.TemporaryDirectory(prefix="ncaas-runner-") as context:
        for wheel in wheels:
            link_or_copy(wheel, Path(context) / wheel.name)
        done = subprocess.run(
            [
                *("docker", "build", "--network", "none", "--pull=false", "-q"),
                *("-t", RUNNER_IMAGE, "--build-arg", f"VERSION={version}"),
                *("-f", str(DOCKERFILE), context),
            ],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "DOCKER_BUILDKIT": "0"},
        )
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise NcaasError(f"building {RUNNER_IMAGE} failed", hint=tail)
    image_id = engine.client.images.get(RUNNER_IMAGE).id
    archive, sha256 = save_image(engine, RUNNER_IMAGE, image_id, folder, say)
    return image_id, archive, sha256
