"""Another person on the same machine: a local user the test creates (and removes), who runs
commands with nothing of the test's environment but PATH, HOME and what the test passes."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
from collections.abc import Iterator
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
def other_user(docker_group: bool = False) -> Iterator[OtherUser]:
    """A fresh local user (in the docker group if asked), removed with its home afterwards."""
    require_root()
    name = f"ncaas-t{secrets.token_hex(4)}"
    command = ["useradd", "--create-home", "--shell", "/bin/bash", name]
    subprocess.run(command, check=True, capture_output=True)
    try:
        entry = pwd.getpwnam(name)
        groups: tuple[int, ...] = ()
        if docker_group:
            import grp

            groups = (grp.getgrnam("docker").gr_gid,)
        yield OtherUser(name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir), groups)
    finally:
        # Whatever it left running goes first: userdel refuses a user with processes.
        subprocess.run(["pkill", "-KILL", "-u", name], check=False, capture_output=True)
        subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)
