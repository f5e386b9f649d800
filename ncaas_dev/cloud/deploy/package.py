"""The dispatcher's Lambda code: ncaas_dev, its metadata and its dependencies, zipped.

The Lambda runtime (python3.12, x86_64) brings a boto3 of its own, which AWS updates when it
likes; conditional writes need boto3 >= 1.35.50. So boto3, botocore and s3transfer are bundled,
pinned like the rest to this machine's versions, from PyPI as manylinux wheels for that runtime
(``pip install --platform``), whatever this machine runs. The package's own metadata
(``ncaas_dev-VERSION.dist-info``) goes in too, so provenance names the real version. The zip is
built reproducibly (fixed times, sorted entries) and cached by the content that goes into it,
so an unchanged ncaas_dev costs a hash, and its S3 key names its content.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import ncaas_dev

from ...errors import NcaasError
from ...storage import Storage
from .template import LAMBDA_RUNTIME

# The whole package goes into the zip, found from the package itself, not from where this
# module happens to lie in it.
PACKAGE_ROOT = Path(ncaas_dev.__file__).resolve().parent
# What the dispatcher imports, boto3 included (the runtime's own may be older or newer):
# pinned to this machine's versions, so the Lambda runs what the tests ran.
LAMBDA_REQUIREMENTS = ("boto3", "botocore", "s3transfer", "pydantic", "PyYAML")
DIST_NAME = "ncaas-dev"
PLATFORM = "manylinux2014_x86_64"
ARTIFACT_PREFIX = ".ncaas/artifacts/"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Package:
    path: Path
    digest: str  # sha256 of the zip
    built: bool  # False when it came from the cache
    seconds: float

    @property
    def key(self) -> str:
        return f"{ARTIFACT_PREFIX}dispatcher-{self.digest[:20]}.zip"


def upload_artifact(storage: Storage, bucket: str, package: Package) -> str:
    """Put the zip at its key unless an object there has the zip's sha256 (S3's own checksum,
    computed by S3 when it was stored): a key is no proof of its content. Returns
    ``reused`` or ``uploaded``."""
    want = base64.b64encode(bytes.fromhex(package.digest)).decode()
    if storage.sha256_of(bucket, package.key) == want:
        return "reused"
    # S3 refuses the upload if the bytes it got differ from the checksum.
    storage.put_bytes(bucket, package.key, package.path.read_bytes(), sha256=want)
    return "uploaded"


def requirements() -> list[str]:
    return [f"{name}=={importlib.metadata.version(name)}" for name in LAMBDA_REQUIREMENTS]


def _sources() -> list[Path]:
    return sorted(
        p
        for p in PACKAGE_ROOT.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix in (".py", ".json", ".typed")
    )


def _metadata() -> tuple[str, bytes]:
    """The dist-info METADATA of the installed ncaas-dev (a minimal one from a source tree)."""
    version = ncaas_dev.__version__
    try:
        text = importlib.metadata.distribution(DIST_NAME).read_text("METADATA")
    except importlib.metadata.PackageNotFoundError:
        text = None
    body = text or f"Metadata-Version: 2.1\nName: {DIST_NAME}\nVersion: {version}\n"
    return f"ncaas_dev-{version}.dist-info", body.encode()


def source_key() -> str:
    """Hash of everything the zip is made of: the package's files, the pins, the runtime."""
    digest = hashlib.sha256()
    for line in (LAMBDA_RUNTIME, PLATFORM, *requirements(), _metadata()[0]):
        digest.update(line.encode() + b"\0")
    for path in _sources():
        digest.update(str(path.relative_to(PACKAGE_ROOT)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _install_dependencies(target: Path) -> None:
    python = LAMBDA_RUNTIME.removeprefix("python")
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--platform", PLATFORM, "--implementation", "cp", "--python-version", python,
        "--only-binary=:all:", "--target", str(target), *requirements(),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise NcaasError(
            f"could not fetch the dispatcher's dependencies for {LAMBDA_RUNTIME}: {last}",
            hint="check that PyPI is reachable (pip install), then deploy again",
        )


def _write_zip(root: Path, out: Path) -> None:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            if "__pycache__" in path.parts:
                continue
            info = zipfile.ZipInfo(str(path.relative_to(root)), _ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())


def build_package(cache_dir: Path) -> Package:
    """The zip for the current sources, built once per content and kept in ``cache_dir``."""
    started = time.monotonic()
    key = source_key()
    cache_dir.mkdir(parents=True, exist_ok=True)
    cached = cache_dir / f"{key}.zip"
    if cached.exists():
        digest = hashlib.sha256(cached.read_bytes()).hexdigest()
        return Package(cached, digest, built=False, seconds=time.monotonic() - started)
    with tempfile.TemporaryDirectory(dir=cache_dir) as work:
        root = Path(work) / "root"
        _install_dependencies(root)
        shutil.copytree(
            PACKAGE_ROOT, root / "ncaas_dev", ignore=shutil.ignore_patterns("__pycache__")
        )
        info, metadata = _metadata()
        (root / info).mkdir()
        (root / info / "METADATA").write_bytes(metadata)
        (root / info / "top_level.txt").write_text("ncaas_dev\n")
        partial = Path(work) / "package.zip"
        _write_zip(root, partial)
        partial.replace(cached)  # whole or absent: a crash never leaves half a zip cached
    digest = hashlib.sha256(cached.read_bytes()).hexdigest()
    return Package(cached, digest, built=True, seconds=time.monotonic() - started)
