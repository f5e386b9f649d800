"""The compose stack's two images, built offline from the project's base, skipped when unchanged.

``ncaas/localstack`` (LocalStack's runtime, the pins of ``localstack/requirements.txt``) and
``ncaas/dispatcher`` (ncaas-dev itself) are built ``FROM ncaas/base:bookworm`` with
``--network none``: the host's pip fills a wheelhouse per image first (``build/wheelhouse/``),
which is the build context. Each image is tagged with a hash of what shapes it (its Dockerfile,
its requirements or ncaas-dev's sources, the base image's id); an image with that tag already
built means there is nothing to do. ``:current`` names the last one built, for a plain
``docker-compose up``.

    python -m ncaas_dev.local.images        # both images; prints their tags
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import ServiceUnavailable
from ..settings import PROJECT_ROOT
from .stack import localstack_python

BASE_IMAGE = "ncaas/base:bookworm"
WHEELHOUSE = PROJECT_ROOT / "build" / "wheelhouse"
# The base image's Python: wheels with compiled parts must be built for this one.
IMAGE_PYTHON = "3.11"


@dataclass(frozen=True)
class StackImage:
    name: str  # ncaas/{name}
    inputs: Callable[[], Iterable[Path]]  # the files whose content shapes the image
    requirements: Callable[[], list[str]]  # what pip installs from the wheelhouse

    @property
    def repository(self) -> str:
        return f"ncaas/{self.name}"

    @property
    def dockerfile(self) -> Path:
        return PROJECT_ROOT / "images" / self.name / "Dockerfile"


ATOMIC_WRITES = PROJECT_ROOT / "localstack" / "s3_atomic_writes.py"  # as local/stack.py runs it


def _localstack_inputs() -> list[Path]:
    return [PROJECT_ROOT / "localstack" / "requirements.txt", ATOMIC_WRITES]


def _dispatcher_inputs() -> list[Path]:
    sources = sorted(
        p for p in (PROJECT_ROOT / "ncaas_dev").rglob("*") if p.is_file() and _is_source(p)
    )
    # Not README.md, though the wheel's metadata carries it: an edit there changes no behaviour
    # and should not cost a rebuild.
    return [PROJECT_ROOT / "pyproject.toml", *sources]


def _is_source(path: Path) -> bool:
    return "__pycache__" not in path.parts and path.suffix not in {".pyc", ".pyo"}


def _localstack_requirements() -> list[str]:
    return [str(PROJECT_ROOT / "localstack" / "requirements.txt")]


def _dispatcher_requirements() -> list[str]:
    return [str(PROJECT_ROOT)]


LOCALSTACK = StackImage("localstack", _localstack_inputs, _localstack_requirements)
DISPATCHER = StackImage("dispatcher", _dispatcher_inputs, _dispatcher_requirements)
STACK_IMAGES = (LOCALSTACK, DISPATCHER)


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False)


def image_id(tag: str) -> str | None:
    done = _docker("image", "inspect", "--format", "{{.Id}}", tag)
    return done.stdout.strip() if done.returncode == 0 else None


def content_tag(image: StackImage) -> str:
    """``ncaas/{name}:{hash}``: same inputs and same base, same tag."""
    base = image_id(BASE_IMAGE)
    if base is None:
        raise ServiceUnavailable(
            f"the base image {BASE_IMAGE} is missing", hint="build it: `make base-image`"
        )
    digest = hashlib.sha256(f"v1|{image.name}|{base}\n".encode())
    for path in [image.dockerfile, *image.inputs()]:
        digest.update(f"{path.relative_to(PROJECT_ROOT)}\0".encode())
        digest.update(path.read_bytes())
    return f"{image.repository}:{digest.hexdigest()[:16]}"


def host_python() -> str:
    """A Python 3.11 on the host to run pip with (its wheels must suit the image's 3.11)."""
    candidates = [str(localstack_python()), sys.executable, shutil.which("python3.11") or ""]
    for python in candidates:
        if python and Path(python).exists() and _version(python) == IMAGE_PYTHON:
            return python
    raise ServiceUnavailable(
        f"no Python {IMAGE_PYTHON} with pip on this machine to fill the image's wheelhouse",
        hint="install python3.11 (or run `make localstack`)",
    )


def _version(python: str) -> str:
    done = subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip()


def fill_wheelhouse(image: StackImage, say: Callable[[str], None]) -> Path:
    """A fresh wheelhouse holding every wheel the image installs, pip's own and a
    requirements.txt naming what to install (pip's cache makes a refill quick)."""
    folder = WHEELHOUSE / image.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    wanted = image.requirements()
    args = [a for r in wanted for a in (["-r", r] if r.endswith(".txt") else [r])]
    say(f"filling {folder} with the host's pip")
    pip = [host_python(), "-m", "pip", "wheel", "-q", "--disable-pip-version-check"]
    done = subprocess.run(
        [*pip, "-w", str(folder), *args, "pip"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise ServiceUnavailable(
            f"pip could not fill the wheelhouse of {image.repository}",
            hint=_last_lines(done.stderr),
        )
    if image is LOCALSTACK:
        shutil.copy(wanted[0], folder / "requirements.txt")
        shutil.copy(ATOMIC_WRITES, folder / ATOMIC_WRITES.name)
    else:
        (folder / "requirements.txt").write_text("ncaas-dev\n")
    return folder


def ensure_image(image: StackImage, say: Callable[[str], None] = print) -> str:
    """The image's content tag, built first unless an image with that tag exists."""
    tag = content_tag(image)
    current = f"{image.repository}:current"
    if image_id(tag) is not None:
        if image_id(current) != image_id(tag):
            _docker("tag", tag, current)
        return tag
    context = fill_wheelhouse(image, say)
    say(f"building {tag} (--network none)")
    # --network none: nothing in the build can reach an index or a registry.
    build = ["docker", "build", "--network", "none", "--pull=false", "-q", "-t", tag, "-t", current]
    label = f"org.ncaas.content={tag.rsplit(':', 1)[1]}"
    done = subprocess.run(
        [*build, "-f", str(image.dockerfile), "--label", label, str(context)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
    )
    if done.returncode != 0:
        raise ServiceUnavailable(
            f"building {tag} failed", hint=_last_lines(done.stderr or done.stdout)
        )
    return tag


def ensure_stack_images(say: Callable[[str], None] = print) -> dict[str, str]:
    """Both images' tags, by name (``localstack``, ``dispatcher``)."""
    return {image.name: ensure_image(image, say) for image in STACK_IMAGES}


def _last_lines(text: str, lines: int = 5) -> str:
    return " | ".join(text.strip().splitlines()[-lines:]) or "(no output)"


def main() -> int:
    try:
        for name, tag in ensure_stack_images(lambda line: print(line, file=sys.stderr)).items():
            print(f"{name}: {tag}")
    except ServiceUnavailable as e:
        print(f"error: {e.message} ({e.hint})", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
