"""What a lab's shared machine must not see: the state folder, and the environment of children.

The state folder (``~/.ncaas-dev``, ``NCAAS_STATE_DIR``) holds job inputs, LocalStack's spool,
logs and the stack's secrets: it and everything under it are its owner's alone (folders 0700,
files 0600), including folders that older versions made 0755.

The stack's daemons (LocalStack, the dispatcher, the command server, the EC2 stand-in) and the
runners they start get only the environment they need: never the developer's real AWS keys,
profile or credential files, which a local stack has no use for and a planted script could read.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Mapping
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600

# Passed to the stack's children as they are: where programs are, who and where the user is,
# and how to reach Docker, Python and SLURM. Nothing else of the caller's environment.
_KEEP = {
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM", "SHELL",
    "VIRTUAL_ENV", "NO_PROXY", "no_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR",
    "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_EC2_METADATA_DISABLED",
}  # fmt: skip
_KEEP_PREFIXES = ("LC_", "NCAAS_", "DOCKER_", "PYTHON", "SLURM_", "COVERAGE_")
# A local stack needs no real credentials: fixed ones, and no credential or config files.
LOCAL_AWS = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_CONFIG_FILE": os.devnull,
}


def child_env(
    extra: Mapping[str, str] | None = None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of a local stack's child: the allow-listed part of ``base`` (default
    ``os.environ``), LocalStack's fixed test credentials, then ``extra``."""
    source = os.environ if base is None else base
    kept = {k: v for k, v in source.items() if k in _KEEP or k.startswith(_KEEP_PREFIXES)}
    return {**kept, **LOCAL_AWS, **(extra or {})}


def private_dir(path: Path) -> Path:
    """``path`` made (with its missing parents) and set 0700: only its owner enters it."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    with contextlib.suppress(PermissionError):  # not ours: the caller's check will say so
        path.chmod(DIR_MODE)
    return path


def tighten(root: Path) -> None:
    """``root`` and everything under it: folders 0700, files 0600 (execute bits kept for the
    owner), as a state folder made by an older version (0755, 0644) needs. Symlinks are left
    alone: their targets are not ours to change."""
    private_dir(root)
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            with contextlib.suppress(OSError):  # gone meanwhile, or not ours
                info = path.lstat()
                if stat.S_ISLNK(info.st_mode) or info.st_uid != os.getuid():
                    continue
                wanted = DIR_MODE if stat.S_ISDIR(info.st_mode) else _file_mode(info.st_mode)
                if stat.S_IMODE(info.st_mode) != wanted:
                    path.chmod(wanted)


def _file_mode(mode: int) -> int:
    return 0o700 if mode & stat.S_IXUSR else FILE_MODE


def write_private(path: Path, data: bytes) -> None:
    """``data`` in ``path``, created 0600 (never readable by others, not even for a moment)."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as file:
        os.fchmod(file.fileno(), FILE_MODE)
        file.write(data)
