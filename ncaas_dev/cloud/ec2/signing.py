"""Proof that an instance on LocalStack was launched by this stack's own dispatcher.

LocalStack has no authentication: any local user can call RunInstances with ncaas-dev's tags.
The EC2 stand-in executes user-data as the stack's owner, so it runs only instances that carry
an HMAC of their user-data made with a per-stack secret, which lives 0600 in the 0700 state
folder (only the owner's processes can read it). Real EC2 needs none of this: there, the
instance's IAM role and the account's own access control decide who launches.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from ...privacy import private_dir, write_private

TAG_PROOF = "ncaas:launch-proof"
SECRET_FILE = "ec2-launch.key"


def stack_secret(state_dir: Path) -> bytes:
    """The stack's secret, made on first use. Created under a temporary name and linked into
    place, so the launcher and the stand-in starting together agree on one secret."""
    path = state_dir / SECRET_FILE
    if not path.exists():
        private_dir(state_dir)
        temporary = state_dir / f".{SECRET_FILE}.{os.getpid()}"
        write_private(temporary, secrets.token_hex(32).encode())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            temporary.unlink(missing_ok=True)
    return path.read_bytes().strip()


def launch_proof(secret: bytes, user_data: bytes) -> str:
    """The tag value: HMAC-SHA256 of the exact user-data the stand-in will execute."""
    return hmac.new(secret, user_data, hashlib.sha256).hexdigest()


def proven(secret: bytes, user_data: bytes, tag: str | None) -> bool:
    return tag is not None and hmac.compare_digest(launch_proof(secret, user_data), tag)
