"""Docker adapter: the only module that talks to the Docker engine."""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.types
import requests

from .blueprint import LoadedBlueprint
from .errors import NcaasError, ServiceUnavailable

LABEL = "ncaas"
# Process (and thread) cap per container: 128 per CPU, at least 1024. Far above what a
# multi-threaded analysis uses (a BLAS pool per core plus a worker pool), far below the host's
# pid table: on a host with the old pid_max of 32768, four containers at 1024 take an eighth.
# A fork bomb stops here instead of starving the machine.
PIDS_PER_CPU = 128
MIN_PIDS = 1024
# The legacy builder's step line, e.g. "Step 1/4 : FROM python:3.11-slim".
FROM_STEP = re.compile(r"Step \d+/\d+ : FROM ", re.IGNORECASE)
BASE_REPO = "ncaas/base"  # images/base: what every blueprint builds FROM, offline
DOCKER_HINT = "start it with `make setup` (as root) or `sudo systemctl start docker`"


class ImageMissing(NcaasError):
    """The analysis image is not on this engine."""


class BuildFailed(NcaasError):
    """`docker build` of a blueprint failed; the message holds the failing step's output."""


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool


@dataclass(frozen=True)
class ContainerSpec:
    image: str
    command: list[str] | None
    environment: dict[str, str]
    mounts: list[Mount]
    cpus: float
    memory: int
    network: bool
    gpu: bool
    labels: dict[str, str]
    user: str
    # With ``network``: the Docker network to join (None: the engine's default network).
    network_name: str | None = None
    # `ncaas-dev shell` only: replace the image's ENTRYPOINT, and let the engine remove the
    # container when it stops (so not even a killed ncaas-dev leaves one behind).
    entrypoint: list[str] | None = None
    auto_remove: bool = False
    # resources.disk in bytes: no file the analysis writes may grow past it (RLIMIT_FSIZE);
    # the runner's DiskGuard watches the total.
    disk: int | None = None


def pids_limit(cpus: float) -> int:
    return max(MIN_PIDS, PIDS_PER_CPU * math.ceil(cpus))


@dataclass(frozen=True)
class ExitInfo:
    exit_code: int
    oom_killed: bool


# The API version each engine (DOCKER_HOST) negotiated in this process. Asking for it
# (GET /version) takes the engine ~7 ms; its /_ping takes 1 ms and names the version too, so a
# process that has asked once (the command server, before it forks commands) only pings.
_api_versions: dict[str, str] = {}


def connect() -> Any:
    """A Docker client, or one line saying Docker does not answer and how to start it."""
    host = os.environ.get("DOCKER_HOST", "")
    known = _api_versions.get(host)
    try:
        if known is not None:
            client = docker.from_env(version=known, timeout=60)
            with contextlib.suppress(requests.RequestException):  # then asked below, and said
                answer = client.api.get(f"{client.api.base_url}/_ping", timeout=60)
                if answer.ok and answer.headers.get("Api-Version") == known:
                    return client
            client.close()  # no answer, or another engine answers now (restarted, upgraded)
        client = docker.from_env(version="auto", timeout=60)  # asking is the check it answers
        _api_versions[host] = client.api.api_version
        return client
    except (docker.errors.DockerException, requests.RequestException) as e:
        raise ServiceUnavailable("Docker does not answer", hint=DOCKER_HINT) from e


def learn_api_version() -> None:
    """For a process about to fork (the command server, the runner fork server): learn the
    engine's API version over a connection closed at once, so each child's ``connect`` only
    pings. No engine now: each child asks, and says so, itself."""
    with contextlib.suppress(ServiceUnavailable):
        connect().close()


def containers_where(client: Any, filters: dict[str, Any], stopped: bool = True) -> list[Any]:
    """The containers ``filters`` select, stopped ones too unless ``stopped`` is False. One
    removed while the engine listed it is left out (the SDK would raise NotFound for it)."""
    return list(client.containers.list(ignore_removed=True, all=stopped, filters=filters))


class Engine:
    def __init__(self, client: Any) -> None:
        self.client = client

    # -- images ------------------------------------------------------------------------------
    def image_id(self, tag: str) -> str | None:
        try:
            return str(self.client.images.get(tag).id)
        except docker.errors.ImageNotFound:
            return None

    def _base_hint(self, tail: list[str]) -> str | None:
        """When the step that failed is FROM: the base images this machine has. Builds run
        offline (no registry), so only a local image can be a base."""
        step = tail[-1].strip() if tail else ""
        if not FROM_STEP.match(step):
            return None
        try:
            local = sorted(
                {t for image in self.client.images.list(name=BASE_REPO) for t in image.tags}
            )
        except (docker.errors.APIError, requests.RequestException):
            local = []
        if not local:
            return (
                f"{step}: that image is not on this machine and builds cannot pull it; build "
                f"the local base ({BASE_REPO}:bookworm) with `make base-image` and use it"
            )
        return (
            f"{step}: that image is not on this machine and builds cannot pull it; start the "
            f"Dockerfile FROM a local image: {', '.join(local)}"
        )

    def build(self, loaded: LoadedBlueprint, on_line: Callable[[str], None] | None = None) -> str:
        """Build the blueprint's image (the engine's layer cache makes a rebuild cheap)."""
        spec = loaded.blueprint.image
        context = (loaded.folder / spec.context).resolve()
        dockerfile = (loaded.folder / spec.dockerfile).resolve()
        try:
            relative = dockerfile.relative_to(context).as_posix()
        except ValueError:
            relative = str(dockerfile)
        tail: list[str] = []
        image_id: str | None = None
        try:
            for chunk in self.client.api.build(
                path=str(context),
                dockerfile=relative,
                tag=loaded.blueprint.image_tag,
                buildargs=spec.build_args,
                rm=True,
                forcerm=True,
                decode=True,
                # No blueprint hash here: `bake` writes cloud.ami into blueprint.yaml, and the
                # image it baked must keep its id (the AMI is checked against it).
                labels={LABEL: "image", "ncaas.analysis": loaded.blueprint.analysis},
            ):
                if "error" in chunk:
                    hint = [*tail[-10:], *filter(None, [self._base_hint(tail)])]
                    raise BuildFailed(
                        f"docker build of {loaded.folder} failed: {chunk['error'].strip()}",
                        hint="\n".join(hint) or None,
                    )
                line = str(chunk.get("stream", "")).rstrip()
                if line:
                    tail.append(line)
                    if on_line:
                        on_line(line)
                if "aux" in chunk and "ID" in chunk["aux"]:
                    image_id = chunk["aux"]["ID"]
        except (docker.errors.APIError, requests.RequestException) as e:
            raise BuildFailed(f"docker build of {loaded.folder} failed: {e}") from e
        return image_id or self.image_id(loaded.blueprint.image_tag) or ""

    # -- containers --------------------------------------------------------------------------
    def start(self, spec: ContainerSpec, on_created: Callable[[Any], None] | None = None) -> Any:
        if self.image_id(spec.image) is None:
            raise ImageMissing(
                f"image missing: {spec.image} is not on this Docker engine",
                hint="build it with `ncaas-dev build BLUEPRINT_DIR`",
            )
        host_cpus = os.cpu_count() or 1
        kwargs: dict[str, Any] = {
            "command": spec.command,
            "environment": spec.environment,
            # Mount objects, not "src:dst:mode" strings: a ':' in a dataset's name cannot
            # change what is mounted.
            "mounts": [
                docker.types.Mount(m.target, str(m.source), type="bind", read_only=m.read_only)
                for m in spec.mounts
            ],
            "nano_cpus": int(min(spec.cpus, host_cpus) * 1e9),
            "mem_limit": spec.memory,
            "memswap_limit": spec.memory,  # no swap: over the limit is an OOM kill, not a crawl
            "pids_limit": pids_limit(spec.cpus),
            "labels": {LABEL: "run", **spec.labels},
            "user": spec.user,
            # The analysis needs no privilege: no capabilities, and no setuid way to regain any.
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
        }
        if spec.disk is not None:
            kwargs["ulimits"] = [docker.types.Ulimit(name="fsize", soft=spec.disk, hard=spec.disk)]
        if spec.entrypoint is not None:
            kwargs["entrypoint"] = spec.entrypoint
        if spec.auto_remove:
            kwargs["auto_remove"] = True
        if not spec.network:
            kwargs["network_mode"] = "none"
        elif spec.network_name:
            kwargs["network"] = spec.network_name
        if spec.gpu:
            kwargs["device_requests"] = [
                docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])
            ]
        container = None
        try:
            container = self.client.containers.create(spec.image, **kwargs)
            if on_created is not None:  # e.g. attach_output: only before start is nothing missed
                on_created(container)
            container.start()
            return container
        except docker.errors.APIError as e:
            if container is not None:  # created but never started: leave nothing behind
                with contextlib.suppress(docker.errors.APIError):
                    container.remove(force=True)
            reason = str(e.explanation or e)
            if spec.gpu and "device driver" in reason:
                raise NcaasError(
                    "no GPU: the blueprint asks for one (resources.gpu) but this Docker engine "
                    "has no NVIDIA runtime; install the NVIDIA container toolkit here, or run it "
                    "on a GPU instance (--launcher ec2)"
                ) from e
            raise NcaasError(f"docker could not start the analysis: {reason}") from e

    @staticmethod
    def attach_output(container: Any) -> Iterator[bytes]:
        """stdout+stderr of a created, not yet started container, byte for byte as written.

        The logs endpoint holds a line back until its newline, so a progress bar redrawn with
        CRs would show nothing until it ends; attaching before the start misses nothing.
        """
        stream: Iterator[bytes] = container.attach(
            stream=True, logs=False, stdout=True, stderr=True
        )
        return stream

    @staticmethod
    def close_output(stream: Any) -> None:
        """Close an ``attach_output`` stream and the connection under it: docker-py's own close
        shuts the socket but leaves the HTTP response's reader open, which holds it."""
        response = getattr(stream, "_response", None)
        stream.close()
        reader = getattr(getattr(response, "raw", None), "_fp", None)
        if reader is not None:
            reader.close()

    @staticmethod
    def stream_output(container: Any) -> Iterator[bytes]:
        """stdout+stderr as it is written, until the container exits."""
        yield from container.logs(stream=True, follow=True, stdout=True, stderr=True)

    @staticmethod
    def wait(container: Any, timeout: float) -> ExitInfo | None:
        """The exit, or None if it still runs after ``timeout`` seconds."""
        try:
            result = container.wait(timeout=timeout)
        except requests.exceptions.ReadTimeout:
            return None
        except requests.exceptions.ConnectionError as e:
            if "timed out" in str(e).lower():  # urllib3 wraps the same timeout this way
                return None
            # A restarted or stopped engine is not a timeout: say what really happened.
            raise ServiceUnavailable(
                "the Docker engine stopped answering while the analysis ran",
                hint="check `systemctl status docker` (or scripts/ensure-docker.sh) and submit "
                "the dataset again",
            ) from e
        container.reload()
        oom = bool(container.attrs.get("State", {}).get("OOMKilled"))
        return ExitInfo(exit_code=int(result.get("StatusCode", -1)), oom_killed=oom)

    @staticmethod
    def usage(container: Any) -> dict[str, float] | None:
        """Memory in use (bytes) and CPU time so far (seconds), from one quick sample (no
        waiting for a second one); None if the engine cannot say (the container is gone)."""
        try:
            stats = container.stats(stream=False, one_shot=True)
            memory = stats["memory_stats"]["usage"]
            cpu_ns = stats["cpu_stats"]["cpu_usage"]["total_usage"]
        except (docker.errors.APIError, requests.exceptions.RequestException, KeyError, TypeError):
            return None
        return {"memory_usage": int(memory), "cpu_usage": round(cpu_ns / 1e9, 3)}

    def written(self, container: Any) -> int:
        """Bytes in the container's writable layer (Docker's SizeRw); 0 once it is gone."""
        try:
            found = self.client.api.containers(all=True, size=True, filters={"id": container.id})
        except (docker.errors.APIError, requests.exceptions.RequestException):
            return 0
        return int(found[0].get("SizeRw") or 0) if found else 0

    @staticmethod
    def kill(container: Any) -> None:
        # Already gone, or the engine with it: the result is recorded either way.
        with contextlib.suppress(docker.errors.APIError, requests.exceptions.ConnectionError):
            container.kill()

    @staticmethod
    def remove(container: Any) -> None:
        with contextlib.suppress(docker.errors.APIError, requests.exceptions.ConnectionError):
            container.remove(force=True)
