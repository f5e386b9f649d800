"""Another person on the same machine: a local user the test creates (and removes), who runs
commands with nothing of the test's environment but PATH, HOME and what the test passes."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

SYSTEM_PYTHON = "/usr/bin/python3"


@dataclass(frozen=True)
class OtherUser:
    name: str
    uid: int
    gid: int
    home: Path
    groups: tuple[int, ...]

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.home),
            "USER": self.name,
            "LOGNAME": self.name,
            "LANG": "C.UTF-8",
            **extra,
        }

    def run(
        self, command: list[str], *, timeout: float = 120, cwd: Path | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command,
            user=self.uid,
            group=self.gid,
            extra_groups=list(self.groups),
            env=self.env(**env),
            cwd=cwd or self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def popen(self, command: list[str], log: Path, **env: str) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            return subprocess.Popen(
                command,
                user=self.uid,
                group=self.gid,
                extra_groups=list(self.groups),
                env=self.env(**env),
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def python(self, site_packages: Path, name: str = "venv") -> Path:
        """A Python of the user's own (the system's, in a venv in their home) that imports what
        ``site_packages`` holds: the test's venv lives under a Python in root's home, which no
        other user may execute."""
        venv = self.home / name
        made = self.run([SYSTEM_PYTHON, "-m", "venv", "--without-pip", str(venv)])
        assert made.returncode == 0, made.stderr
        own = next((venv / "lib").glob("python3*/site-packages"))
        (own / "borrowed.pth").write_text(f"import site; site.addsitedir({str(site_packages)!r})\n")
        return venv / "bin" / "python"


def site_packages(python: Path) -> Path:
    """The site-packages folder of the venv ``python`` belongs to."""
    return next((python.parent.parent / "lib").glob("python3*/site-packages"))


def require_root() -> None:
    if os.geteuid() != 0 or shutil.which("useradd") is None or not Path(SYSTEM_PYTHON).exists():
        pytest.skip(f"another local user needs root, useradd and {SYSTEM_PYTHON}")


@contextmanager
def traversable(paths: Iterable[Path]) -> Iterator[None]:
    """Search (x) permission for others on each folder above ``paths`` that lacks it, taken back
    afterwards: a checkout under a private folder (a 0700 home, ``mktemp -d``) is otherwise out
    of the other user's reach, and with it the code they are to run. Nothing becomes listable."""
    changed: dict[Path, int] = {}
    for path in paths:
        for folder in [path, *path.parents]:
            mode = stat.S_IMODE(folder.stat().st_mode)
            if not mode & stat.S_IXOTH and folder not in changed:
                changed[folder] = mode
                folder.chmod(mode | stat.S_IXOTH)
    try:
        yield
    finally:
        for folder, mode in changed.items():
            folder.chmod(mode)


@contextmanager
def other_user(docker_group: bool = False) -> Iterator[OtherUser]:
    """A fresh local user (in the docker group if asked), removed with its home afterwards.
    They can reach the test's checkout and venv (``traversable``), as a lab member can reach
    an installed ncaas-dev."""
    require_root()
    name = f"ncaas-t{secrets.token_hex(4)}"
    command = ["useradd", "--create-home", "--shell", "/bin/bash", name]
    subprocess.run(command, check=True, capture_output=True)
    code = [Path(__file__).resolve().parents[2], site_packages(Path(sys.executable))]
    try:
        entry = pwd.getpwnam(name)
        groups: tuple[int, ...] = ()
        if docker_group:
            import grp

            groups = (grp.getgrnam("docker").gr_gid,)
        with traversable(code):
            yield OtherUser(name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir), groups)
    finally:
        # Whatever it left running goes first: userdel refuses a user with processes.
        subprocess.run(["pkill", "-KILL", "-u", name], check=False, capture_output=True)
        subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)
