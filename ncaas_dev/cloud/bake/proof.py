"""Proving a bake: run the provisioning on a source (the stand-in container, or a real
instance) and compare what that machine reports with what was baked."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...errors import NcaasError
from . import packer
from .payload import Reporter


def check_report(
    report: Mapping[str, Any], expected: Mapping[str, Any], require_docker: bool
) -> list[str]:
    """What the provisioned machine reports vs what was baked; one line per mismatch."""
    problems: list[str] = []
    if report.get("ncaas_version") != expected["ncaas_version"]:
        problems.append(
            f"runner is ncaas-dev {report.get('ncaas_version')}, "
            f"expected {expected['ncaas_version']}"
        )
    if report.get("runner_python") != expected["runner_python"]:
        problems.append(
            f"runner python is {report.get('runner_python')}, expected {expected['runner_python']}"
        )
    image = report.get("image") or {}
    if image.get("id") != expected["image_id"]:
        problems.append(f"image there is {image.get('id')}, expected {expected['image_id']}")
    if require_docker and image.get("how") != "docker":
        problems.append("the image is not loaded in Docker on the instance")
    if image.get("how") == "archive" and expected["image_tag"] not in image.get("repo_tags", []):
        problems.append(f"the archive does not tag the image {expected['image_tag']}")
    if "runner_image_id" in expected:  # a Batch analysis: its jobs' runner image
        runner = report.get("runner_image") or {}
        if runner.get("id") != expected["runner_image_id"]:
            problems.append(
                f"runner image there is {runner.get('id')}, expected {expected['runner_image_id']}"
            )
        if require_docker and runner.get("how") != "docker":
            problems.append("the runner image is not loaded in Docker on the instance")
    if report.get("baked") != expected["baked"]:
        problems.append("baked.json on the instance differs from what was baked")
    return problems


def packer_log(work: Path, source: str) -> Path:
    """Where one Packer source's build writes its log."""
    return work / f"packer-{source.split('.')[-1]}.log"


def provision_and_check(
    plan: packer.BakePlan,
    source: str,
    var_file: Path,
    env: Mapping[str, str],
    work: Path,
    expected: Mapping[str, Any],
    say: Reporter,
) -> dict[str, Any]:
    """Run the provisioning on ``source`` and compare its report with what was baked; a real
    instance must have the image loaded in Docker (the stand-in has no daemon)."""
    plan.verify_report.unlink(missing_ok=True)
    plan.manifest.unlink(missing_ok=True)
    log = packer_log(work, source)
    packer.build(source, var_file, env=env, log_path=log, on_line=say.line)
    try:
        report = json.loads(plan.verify_report.read_text())
    except (OSError, ValueError) as e:
        raise NcaasError(f"{source} left no provisioning report: {e}", hint=f"see {log}") from e
    require_docker = source != packer.SOURCE_STANDIN
    problems = check_report(report, expected, require_docker=require_docker)
    if problems:
        raise NcaasError(
            f"provisioning on {source} does not match the bake: {'; '.join(problems)}",
            hint=f"report: {plan.verify_report}; log: {log}",
        )
    return {"on": source, **report}
