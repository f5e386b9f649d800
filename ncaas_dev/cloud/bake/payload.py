"""The payload a bake ships to the instance: the analysis image as a ``docker save`` archive
and a wheelhouse (the same ncaas-dev as the runner, with its dependencies pinned to the
versions this checkout runs), so installing on the instance needs no network.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import docker.errors
import requests

from ... import __version__
from ...containers import Engine
from ...errors import NcaasError
from ...settings import PROJECT_ROOT

# Pythons the wheelhouse serves: the stand-in (Debian bookworm) and Ubuntu 24.04 / the GPU base.
WHEELHOUSE_PYTHONS = ("3.11", "3.12")
WHEEL_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


class Reporter(Protocol):
    """Where the bake says what it does (the CLI draws it with Rich)."""

    def step(self, title: str, total: int | None = None) -> None: ...
    def advance(self, amount: int) -> None: ...
    def line(self, text: str) -> None: ...


def save_image(
    engine: Engine, tag: str, image_id: str, folder: Path, reporter: Reporter
) -> tuple[Path, str]:
    """``docker save`` the image (tagged, so ``docker load`` restores the tag) into
    ``folder``, once per image id; returns the archive and its sha256."""
    hex_id = image_id.removeprefix("sha256:")
    archive = folder / f"image-{hex_id[:16]}.tar"
    digest_file = archive.with_suffix(".sha256")
    if archive.is_file() and digest_file.is_file():
        return archive, digest_file.read_text().strip()
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("image-*"):  # one archive per analysis is enough
        stale.unlink()
    part = archive.with_suffix(".part")
    try:
        image = engine.client.images.get(tag)
        if image.id != image_id:
            raise NcaasError(f"{tag} changed while baking ({image.id} != {image_id})")
        reporter.step(f"saving {tag}", total=int(image.attrs.get("Size") or 0) or None)
        digest = hashlib.sha256()
        with part.open("wb") as out:
            for chunk in _image_stream(image, tag):
                out.write(chunk)
                digest.update(chunk)
                reporter.advance(len(chunk))
    except (docker.errors.DockerException, requests.RequestException, OSError) as e:
        part.unlink(missing_ok=True)
        raise NcaasError(f"docker save {tag} failed: {e}") from e
    part.replace(archive)
    digest_file.write_text(digest.hexdigest() + "\n")
    return archive, digest.hexdigest()


def _image_stream(image: Any, tag: str) -> Iterator[bytes]:
    """The archive's bytes. The docker CLI streams it twice as fast as the SDK (which
    reassembles the HTTP chunks in Python: 28 s vs 13 s for 1.2 GB here), so use it when
    it is installed; the provisioning checks the archive's image id either way."""
    cli = shutil.which("docker")
    if cli is None:
        yield from image.save(chunk_size=4 * 1024**2, named=tag)
        return
    with subprocess.Popen(
        [cli, "save", tag], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        while chunk := process.stdout.read(4 * 1024**2):
            yield chunk
        error = process.stderr.read().decode(errors="replace").strip()
        if process.wait() != 0:
            raise OSError(error or f"docker save exited {process.returncode}")


def _source_files(root: Path) -> list[Path]:
    files = [root / "pyproject.toml", root / "README.md"]
    files += sorted(p for p in (root / "ncaas_dev").rglob("*") if p.is_file() and _shipped(p))
    return files


def _shipped(path: Path) -> bool:
    return "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo")


def _pip(args: list[str], what: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise NcaasError(f"{what} failed: {tail}", hint="pip needs PyPI (or your index) here")


def _constraints() -> list[str]:
    """Pin the runner's dependencies to the versions this machine runs (and was tested with)."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=False,
    )
    return [line for line in done.stdout.splitlines() if re.match(r"^[A-Za-z0-9_.\-]+==", line)]


def build_wheelhouse(cache: Path, reporter: Reporter, root: Path = PROJECT_ROOT) -> list[Path]:
    """The wheels the instance installs from, with no network: ncaas-dev built from this
    source tree, its dependencies and pip, for every Python in WHEELHOUSE_PYTHONS.

    The dependencies are cached apart from ncaas-dev's own wheel: a change to the code
    rebuilds one small wheel, not the downloads."""
    wheel = _runner_wheel(cache / "runner", root, reporter)
    return [wheel, *_dependency_wheels(cache / "deps", _requires(wheel), reporter)]


def wheel_cache() -> Path:
    """Wheels are content-addressed, so every state folder (and test session) shares them."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ncaas-dev" / "wheels"


@contextlib.contextmanager
def _publish(folder: Path) -> Iterator[Path]:
    """Fill a scratch folder, then move it to ``folder`` in one rename: a concurrent bake sees
    a whole folder or none, and the loser of a race keeps the winner's (equal) content."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
    try:
        yield scratch
        try:
            scratch.rename(folder)
        except OSError:
            if not folder.is_dir():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _prune(folder.parent, keep=folder)


def _prune(cache: Path, keep: Path, days: float = 14) -> None:
    """Drop cache entries unused for ``days`` (others may be in use by a concurrent bake)."""
    cutoff = time.time() - days * 86400
    os.utime(keep)
    for entry in cache.iterdir():
        if entry != keep and entry.stat().st_mtime < cutoff:
            shutil.rmtree(entry, ignore_errors=True)


def _runner_wheel(cache: Path, root: Path, reporter: Reporter) -> Path:
    if not (root / "pyproject.toml").is_file() or not (root / "ncaas_dev").is_dir():
        raise NcaasError(
            f"ncaas-dev's source tree is not at {root}: the bake builds its wheel from it",
            hint="run ncaas-dev from a checkout of the project (pip install -e .)",
        )
    digest = hashlib.sha256()
    for path in _source_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    folder = cache / digest.hexdigest()[:16]
    if not folder.is_dir():
        reporter.step("building the ncaas-dev wheel")
        with _publish(folder) as scratch, tempfile.TemporaryDirectory() as tmp:
            for path in _source_files(root):  # a copy: pip leaves build/ and egg-info behind
                target = Path(tmp) / path.relative_to(root)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
            _pip(["wheel", "--quiet", "--no-deps", "--wheel-dir", str(scratch), tmp], "pip wheel")
    wheel = next(folder.glob("ncaas_dev-*.whl"), None)
    if wheel is None or wheel.name.split("-")[1] != __version__:
        raise NcaasError(
            f"the wheel built from {root} ({wheel and wheel.name}) is not ncaas-dev {__version__}",
            hint="reinstall the project (pip install -e .) so the versions agree",
        )
    return wheel


def _requires(wheel: Path) -> list[str]:
    """The wheel's runtime requirements (Requires-Dist without extras)."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(name).decode()
    return [
        line.split(":", 1)[1].strip()
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]


def _dependency_wheels(cache: Path, requires: list[str], reporter: Reporter) -> list[Path]:
    constraints = _constraints()
    digest = hashlib.sha256(
        json.dumps([requires, constraints, WHEELHOUSE_PYTHONS, WHEEL_PLATFORMS]).encode()
    )
    folder = cache / digest.hexdigest()[:16]
    if not folder.is_dir():
        reporter.step("downloading the runner's dependencies (wheels)")
        with _publish(folder) as scratch:
            pins = scratch / "constraints.txt"
            pins.write_text("\n".join(constraints) + "\n")
            platforms = [arg for p in WHEEL_PLATFORMS for arg in ("--platform", p)]
            for python in WHEELHOUSE_PYTHONS:
                reporter.line(f"for Python {python}")
                abi = "cp" + python.replace(".", "")
                _pip(
                    [
                        *("download", "--quiet", "--only-binary=:all:", "--dest", str(scratch)),
                        *("--python-version", python, "--implementation", "cp", "--abi", abi),
                        *("--abi", "abi3", "--abi", "none", *platforms, "--platform", "any"),
                        *("--constraint", str(pins), *requires, "pip"),
                    ],
                    f"pip download for Python {python}",
                )
    return sorted(folder.glob("*.whl"))


def stage_payload(
    payload: Path,
    archive: Path,
    wheels: list[Path],
    manifest: Mapping[str, Any],
    runner_archive: Path | None = None,
) -> None:
    """What the file provisioner ships: image.tar, wheelhouse/, baked.json and, for a Batch
    analysis, runner.tar (hard links where the file system allows, so a 1 GB archive is not
    copied)."""
    shutil.rmtree(payload, ignore_errors=True)
    payload.mkdir(parents=True)
    link_or_copy(archive, payload / "image.tar")
    if runner_archive is not None:
        link_or_copy(runner_archive, payload / "runner.tar")
    (payload / "wheelhouse").mkdir()
    for wheel in wheels:
        link_or_copy(wheel, payload / "wheelhouse" / wheel.name)
    (payload / "baked.json").write_text(json.dumps(manifest, indent=2) + "\n")


def link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
