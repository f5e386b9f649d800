"""``ncaas-dev doctor``: what this machine has, what is missing, and the command that fixes it.

Each check is independent and never raises: one broken part must not hide the others.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Any

from ..blueprint import LoadedBlueprint
from ..errors import NcaasError, ServiceUnavailable
from ..settings import Settings

BASE_IMAGE = "ncaas/base:bookworm"


class Level(StrEnum):
    OK = "ok"
    WARN = "warn"  # works, but something will be started or is missing for one path
    FAIL = "fail"  # the main job cannot run until it is fixed


@dataclass(frozen=True)
class Check:
    name: str
    level: Level
    detail: str
    fix: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "level": self.level.value}


def _guarded(name: str, probe: Callable[[], Check]) -> Check:
    try:
        return probe()
    except NcaasError as e:
        return Check(name, Level.FAIL, e.message, e.hint)
    except Exception as e:  # a doctor that crashes helps nobody
        return Check(name, Level.FAIL, f"{type(e).__name__}: {e}")


def check_docker() -> Check:
    from ..containers import connect

    client = connect()
    version = client.version().get("Version", "?")
    return Check("docker", Level.OK, f"engine {version} answers")


def check_base_image() -> Check:
    from ..containers import connect

    if connect().images.list(name=BASE_IMAGE):
        return Check("base image", Level.OK, f"{BASE_IMAGE} is built")
    return Check(
        "base image",
        Level.FAIL,
        f"{BASE_IMAGE} is missing; every analysis image starts from it",
        "images/base/build.sh (or `make setup`)",
    )


def check_localstack(settings: Settings) -> Check:
    from ..local.stack import PidFile, endpoint_answers, localstack_python

    assert settings.endpoint_url is not None
    if endpoint_answers(settings.endpoint_url):
        pid = PidFile(settings.state_dir, "localstack").read().pid
        started = f" (pid {pid}, started by ncaas-dev)" if pid else ""
        return Check("local stack", Level.OK, f"{settings.endpoint_url} answers{started}")
    if not localstack_python().exists():
        return Check(
            "local stack",
            Level.FAIL,
            f"LocalStack's runtime is not installed ({localstack_python()})",
            "make setup",
        )
    return Check(
        "local stack",
        Level.WARN,
        f"nothing answers at {settings.endpoint_url}; `run` and `up` start it",
        "ncaas-dev up",
    )


def check_dispatcher(settings: Settings) -> Check:
    from ..local.stack import PidFile

    info = PidFile(settings.state_dir, "dispatcher").read()
    if not info.running:
        return Check(
            "dispatcher", Level.WARN, "not running; `run` and `up` start it", "ncaas-dev up"
        )
    launcher = info.detail.get("launcher", "docker")
    standin = PidFile(settings.state_dir, "ec2-standin").read()
    if launcher == "ec2" and not standin.running:
        return Check(
            "dispatcher",
            Level.FAIL,
            f"runs with the ec2 launcher (pid {info.pid}) but the EC2 stand-in is not running, "
            "so instances start and nothing executes them",
            "ncaas-dev up --launcher ec2",
        )
    return Check("dispatcher", Level.OK, f"pid {info.pid}, {launcher} launcher")


def check_packer() -> Check:
    packer = shutil.which("packer")
    if packer is None:
        return Check(
            "packer",
            Level.WARN,
            "not installed; only `ncaas-dev bake` needs it",
            "apt-get install packer",
        )
    reply = subprocess.run(
        [packer, "version"], capture_output=True, text=True, timeout=30, check=False
    )
    version = (reply.stdout.strip().splitlines() or ["?"])[0]
    return Check("packer", Level.OK, f"{version} at {packer}")


def check_credentials(settings: Settings) -> Check:
    if settings.local:
        return Check("credentials", Level.OK, "LocalStack takes the fixed test/test keys")
    from ..aws import client

    try:
        identity = client(settings, "sts").get_caller_identity()
    except Exception as e:
        return Check(
            "credentials",
            Level.FAIL,
            f"no usable AWS credentials: {str(e).splitlines()[0]}",
            "aws configure (or set AWS_PROFILE / AWS_ACCESS_KEY_ID)",
        )
    return Check("credentials", Level.OK, f"{identity['Arn']} (account {identity['Account']})")


def check_ami(settings: Settings, loaded: LoadedBlueprint) -> Check:
    from ..aws import ec2_client
    from ..buildcache import cached_build
    from ..cloud.ec2.images import check_ami as verify
    from ..containers import Engine, connect

    blueprint = loaded.blueprint
    ami = blueprint.cloud.ami
    bake = f"ncaas-dev bake {loaded.folder}" + ("" if settings.local else " --cloud")
    if not ami:
        return Check(
            "ami", Level.WARN, f"{blueprint.analysis} has no cloud.ami (not baked yet)", bake
        )
    # Against the blueprint's current content, not its last build: the image is built (cached,
    # as `run` does) when the source changed since, so an edited analysis fails the check.
    image_id: str | None = None
    try:
        engine = Engine(connect())
        image_id = cached_build(loaded, settings.state_dir, engine.build, engine.image_id)
    except ServiceUnavailable:
        pass  # no Docker here (its own check says so): only the AMI's existence is checked
    region = blueprint.cloud.region
    ec2 = ec2_client(replace(settings, region=region))
    verify(ec2, ami, image_id, region, settings, blueprint_dir=str(loaded.folder))
    return Check("ami", Level.OK, f"{ami} exists; baked from the current {blueprint.image_tag}")


def diagnose(settings: Settings, loaded: LoadedBlueprint | None) -> list[Check]:
    probes: list[tuple[str, Callable[[], Check]]] = [
        ("docker", check_docker),
        ("base image", check_base_image),
    ]
    if settings.local:
        probes += [
            ("local stack", lambda: check_localstack(settings)),
            ("dispatcher", lambda: check_dispatcher(settings)),
        ]
    probes += [("packer", check_packer), ("credentials", lambda: check_credentials(settings))]
    if loaded is not None:
        probes.append(("ami", lambda: check_ami(settings, loaded)))
    checks = [_guarded(name, probe) for name, probe in probes]
    if loaded is not None and not settings.local:  # doctor --cloud BLUEPRINT_DIR
        checks += cloud_readiness(loaded)
    return checks


def cloud_readiness(loaded: LoadedBlueprint, clients: Any = None) -> list[Check]:
    """What a first deployment on the account still needs (``cloud/readiness.py``)."""
    from ..cloud.readiness import cloud_checks, cloud_clients

    try:
        clients = clients or cloud_clients(loaded.blueprint.cloud.region)
    except Exception as e:  # no region, a broken profile: said, not raised
        return [Check("account", Level.FAIL, f"{type(e).__name__}: {e}")]
    found = cloud_checks(loaded.blueprint, str(loaded.folder), clients)
    return [Check(c.name, Level(c.level.value), c.detail, c.fix) for c in found]
