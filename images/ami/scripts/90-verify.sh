#!/usr/bin/env bash
# Report what the instance holds, as the runner's own Python sees it; `bake` compares the
# report with what it baked (version, image id, baked.json) and fails the bake on a mismatch.
set -euo pipefail
[ "$(id -u)" = 0 ] || exec sudo --preserve-env bash "$0" "$@"
: "${NCAAS_PAYLOAD:?}" "${NCAAS_VENV:?}" "${NCAAS_BAKE_MANIFEST:?}" "${NCAAS_IMAGE_TAG:?}"

image_id=""
runner_id=""
if ! grep -q '^skipped' /tmp/ncaas-system-step; then
  image_id=$(docker image inspect --format '{{.Id}}' "$NCAAS_IMAGE_TAG")
  runner_id=$(docker image inspect --format '{{.Id}}' ncaas/runner:baked 2>/dev/null || true)
fi
IMAGE_ID_FROM_DOCKER="$image_id" RUNNER_ID_FROM_DOCKER="$runner_id" \
  "$NCAAS_VENV/bin/python" - > /tmp/ncaas-verify.json <<'PY'
import hashlib
import importlib.metadata
import json
import os
import platform
import sys
import tarfile

import ncaas_dev.runner

def archive_image(name: str = "image.tar") -> dict:
    """The image inside a `docker save` archive: its id is the sha256 of its config blob."""
    path = os.path.join(os.environ["NCAAS_PAYLOAD"], name)
    with tarfile.open(path) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        config = tar.extractfile(manifest[0]["Config"]).read()
    return {
        "how": "archive",
        "archive": path,
        "archive_bytes": os.path.getsize(path),
        "id": "sha256:" + hashlib.sha256(config).hexdigest(),
        "repo_tags": manifest[0].get("RepoTags") or [],
    }

from_docker = os.environ.get("IMAGE_ID_FROM_DOCKER")
runner_from_docker = os.environ.get("RUNNER_ID_FROM_DOCKER")
if runner_from_docker:
    runner_image = {"how": "docker", "id": runner_from_docker}
elif os.path.exists(os.path.join(os.environ["NCAAS_PAYLOAD"], "runner.tar")):
    runner_image = archive_image("runner.tar")
else:
    runner_image = None  # not a Batch analysis
report = {
    "python": platform.python_version(),
    "runner_python": sys.executable,
    "runner_module": ncaas_dev.runs.runner.__file__,
    "ncaas_version": importlib.metadata.version("ncaas-dev"),
    "image": {"how": "docker", "id": from_docker} if from_docker else archive_image(),
    "runner_image": runner_image,
    "baked": json.load(open(os.environ["NCAAS_BAKE_MANIFEST"])),
    "system_step": open("/tmp/ncaas-system-step").read().strip(),
    "network_interfaces": sorted(os.listdir("/sys/class/net")),
}
json.dump(report, sys.stdout, indent=2)
PY
cat /tmp/ncaas-verify.json
