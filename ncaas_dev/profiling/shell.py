"""`ncaas-dev shell`: the analysis image under a run's own mounts, environment, user, limits
and network (``runner.container_spec``, started by the same ``Engine.start``), so "works in my
shell" means "works in a run".

``--command`` runs ``sh -c CMD`` as the container's own process, its output passed through.
Interactive, the container runs a placeholder (``sleep`` for ``run.timeout``, auto-removed)
and ``docker exec -it`` opens the shell in it: an exec'd process gets the container's user,
environment, cgroup limits and network. Either way the container is removed on exit, on an
error, on Ctrl-C and on SIGTERM/SIGHUP; were ncaas-dev killed outright, the engine removes the
placeholder once its ``sleep`` (the run's own timeout) ends.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..containers import Engine, connect
from ..errors import NcaasError
from ..runs.runner import give_back
from ..settings import Settings
from .contract import check_files, lay_out, remove_labelled

if TYPE_CHECKING:
    from ..api.project import BlueprintLike

SHELL = "command -v bash >/dev/null 2>&1 && exec bash || exec sh"


@contextlib.contextmanager
def _terminations_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP raise KeyboardInterrupt (as Ctrl-C does), so cleanup runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def run_shell(
    bp: BlueprintLike,
    data: Path | None,
    config: Path | None,
    out: Path,
    *,
    command: str | None,
    group: str | None,
    interactive: bool,
) -> int:
    from ..api.project import cached_build, loaded

    item = loaded(bp)
    check_files(data, config)
    settings = Settings.from_env()
    image_id = cached_build(item, settings.state_dir)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="shell-", dir=settings.state_dir))
    engine = Engine(connect())
    container: Any = None
    # Labels this shell's containers: an interrupt between their creation and `start`
    # returning leaves `container` unset, and they are found by it instead.
    token = secrets.token_hex(8)
    try:
        with _terminations_interrupt():
            laid = lay_out(item, image_id, settings, work, data, config, group, out, "shell")
            timeout = item.blueprint.run.timeout
            labels = {**laid.spec.labels, "ncaas.shell": token}
            if command is not None:
                spec = replace(laid.spec, entrypoint=["sh", "-c"], command=[command], labels=labels)
                container = engine.start(spec)
                reader = threading.Thread(target=_pass_through, args=(container,), daemon=True)
                reader.start()
                exit = Engine.wait(container, timeout=timeout)
                reader.join(timeout=10)
                return 124 if exit is None else exit.exit_code
            keeper = replace(
                laid.spec,
                entrypoint=["sleep"],
                command=[str(timeout)],
                labels=labels,
                auto_remove=True,
            )
            container = engine.start(keeper)
            docker = shutil.which("docker")
            if docker is None:
                raise NcaasError(
                    "an interactive shell needs the docker command line",
                    hint="install docker's CLI, or use --command CMD",
                )
            tty = ["-it"] if interactive and sys.stdin.isatty() else ["-i"]
            done = subprocess.run([docker, "exec", *tty, container.id, "sh", "-c", SHELL])
            return done.returncode
    finally:
        if container is not None:
            Engine.remove(container)
        remove_labelled(engine, f"ncaas.shell={token}")
        with contextlib.suppress(OSError):
            give_back(out)
        shutil.rmtree(work, ignore_errors=True)


def _pass_through(container: Any) -> None:
    """The command's output to this process's stdout: its bytes, or text where stdout has no
    byte buffer (a notebook's, a redirected StringIO)."""
    out = sys.stdout
    buffer = getattr(out, "buffer", None)
    for chunk in Engine.stream_output(container):
        if buffer is not None:
            buffer.write(chunk)
            buffer.flush()
        else:
            out.write(chunk.decode("utf-8", "replace"))
            out.flush()
