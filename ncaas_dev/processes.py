"""Whether a process is alive, as this machine's /proc tells it."""

from __future__ import annotations

import os
from pathlib import Path


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as gone. Look at every thread: a process
    # whose main thread has exited shows a zombie leader while its other threads run on.
    try:
        stats = [t.read_text() for t in Path(f"/proc/{pid}/task").glob("*/stat")]
    except OSError:
        return True
    if not stats:
        return Path(f"/proc/{pid}").exists()
    return any(s.rsplit(")", 1)[1].split()[0] != "Z" for s in stats)
