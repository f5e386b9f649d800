"""The Docker launcher's side of the runner fork server (``runs/forkserver.py``).

``fork(task_file)`` asks the server for a runner and returns its pid, or None when the server
is gone or does not answer (the launcher then starts ``python -m ncaas_dev.runner`` itself).
The server reports each runner's end; ``exit_status`` returns it as ``Popen.returncode`` would
(negative: killed by that signal).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)
# The first fork waits for the server's imports (about 0.5 s idle); past this, the server is
# taken for stuck and replaced by a runner started the slow way.
ANSWER_SECONDS = 20.0


class ForkServer:
    def __init__(self, endpoint_url: str | None, log_path: Path) -> None:
        self.endpoint_url = endpoint_url
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        self._forked: list[int] = []
        self._exits: dict[int, int] = {}

    def start(self) -> None:
        """Start the server unless it runs (it imports while the dispatcher gets ready)."""
        if self._process is not None and self._process.poll() is None:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as errors:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "ncaas_dev.runs.forkserver", self.endpoint_url or ""],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                start_new_session=True,
            )
        assert self._process.stdout is not None
        os.set_blocking(self._process.stdout.fileno(), False)
        self._buffer, self._forked = b"", []

    def fork(self, task_file: Path) -> int | None:
        """A runner for ``task_file``, forked by the server: its pid (None: not forked)."""
        try:
            self.start()
            assert self._process is not None and self._process.stdin is not None
            self._process.stdin.write(f"{task_file}\n".encode())
            self._process.stdin.flush()
        except OSError as e:
            log.warning("runner fork server unavailable (%s); starting the runner directly", e)
            self.close()
            return None
        deadline = time.monotonic() + ANSWER_SECONDS
        while not self._forked and self._read(deadline - time.monotonic()):
            pass
        if not self._forked:
            # Stuck or dead: kill it, then take a fork it answered meanwhile, if any (it can
            # fork no more), so a dataset never gets two runners.
            log.warning("runner fork server did not answer; starting the runner directly")
            self._kill()
            self._read(0)
            pid = self._forked.pop(0) if self._forked else None
            self.close()
            return pid
        return self._forked.pop(0)

    def exit_status(self, pid: int, wait: float = 0.0) -> int | None:
        """The ended runner's exit code as reported by the server (None: not reported)."""
        deadline = time.monotonic() + wait
        while pid not in self._exits and self._read(max(0.0, deadline - time.monotonic())):
            pass
        status = self._exits.pop(pid, None)
        return None if status is None else os.waitstatus_to_exitcode(status)

    def _read(self, timeout: float) -> bool:
        """Take in what the server said within ``timeout``; False once nothing more came."""
        if self._process is None or self._process.stdout is None:
            return False
        out = self._process.stdout
        ready, _, _ = select.select([out], [], [], max(0.0, timeout))
        if not ready:
            return False
        try:
            chunk = os.read(out.fileno(), 65536)
        except BlockingIOError:
            return False
        if not chunk:
            self.close()  # the server ended: the next fork starts a new one
            return False
        self._buffer += chunk
        lines = self._buffer.split(b"\n")
        self._buffer = lines.pop()
        for line in lines:
            word, *numbers = line.decode(errors="replace").split()
            if word == "pid" and len(numbers) == 1:
                self._forked.append(int(numbers[0]))
            elif word == "exit" and len(numbers) == 2:
                self._exits[int(numbers[0])] = int(numbers[1])
        return True

    def _kill(self) -> None:
        if self._process is not None:
            with contextlib.suppress(OSError):
                self._process.kill()
            self._process.wait()

    def close(self) -> None:
        """End of input: the server exits; the runners it forked go on."""
        process, self._process = self._process, None
        if process is None:
            return
        for stream in (process.stdin, process.stdout):
            with contextlib.suppress(OSError):
                if stream is not None:
                    stream.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
