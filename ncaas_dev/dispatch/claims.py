"""Who made a claim, and when a claim's maker counts as gone so another dispatcher may retake it.

Claims (of submissions, of dataset launches) record their maker as ``host:pid`` and a time.
A claim made on this host by a process that is no longer an ncaas process is retaken after a
short grace; any other claim only after a long one. In AWS Lambda ``host:pid`` means nothing
(sandboxes share host names and pids, and a pid cannot be looked up across them), so there a
claim is ``lambda:<log stream>`` and expires by time only.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

from ..pricing import parse_time
from ..status import utcnow

# A claim whose dispatcher is gone (same host, process dead) is retaken after this long;
# long enough for a runner it did start to have marked its dataset running.
DEAD_OWNER_GRACE_SECONDS = 10.0
# A claim from another machine (or a live pid that never finished) is retaken after this.
STALE_CLAIM_SECONDS = 600.0


def _in_lambda() -> bool:
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))


def dispatcher_identity() -> str:
    if _in_lambda():
        return f"lambda:{os.environ.get('AWS_LAMBDA_LOG_STREAM_NAME', '?')}"
    return f"{socket.gethostname()}:{os.getpid()}"


def _process_is_ncaas(pid: int) -> bool:
    """Whether ``pid`` is a live (non-zombie) ncaas process: a reused pid does not count."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    # An empty command line is a process between fork and exec: it may yet be ours.
    return (not cmdline or b"ncaas" in cmdline) and state != "Z"


def claim_is_stale(owner: str | None, claimed_at: str | None, now: float | None = None) -> bool:
    """Whether a claim's maker can be presumed gone, so another dispatcher may retake it."""
    if not claimed_at:
        return True  # made by a dispatcher that did not record itself: older than this rule
    age = (now if now is not None else time.time()) - parse_time(claimed_at).timestamp()
    if age >= STALE_CLAIM_SECONDS:
        return True
    host, _, pid = (owner or "").rpartition(":")
    if _in_lambda() or host != socket.gethostname() or not pid.isdigit():
        return False
    return age >= DEAD_OWNER_GRACE_SECONDS and not _process_is_ncaas(int(pid))


def claim_doc(key: str, etag: str, job: str | None, owner: str) -> dict[str, Any]:
    """The body of a submission's claim (``.ncaas/claims/...``); ``job`` once it is published."""
    return {"submission": key, "etag": etag, "job": job, "owner": owner, "claimed_at": utcnow()}
