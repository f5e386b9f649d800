"""Proof that an instance on LocalStack was launched by this stack's own dispatcher.

LocalStack has no authentication: any local user can call RunInstances with ncaas-dev's tags.
The EC2 stand-in executes user-data as the stack's owner, so it runs only instances that carry
an HMAC of their user-data and a per-launch nonce, made with a per-stack secret, which lives
0600 in the 0700 state folder (only the owner's processes can read it), and each proof once.
Real EC2 needs none of this: there, the account's own access control decides who launches.
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


def launch_proof(secret: bytes, user_data: bytes, nonce: str | None = None) -> str:
    """The tag value, ``NONCE.MAC``: HMAC-SHA256 of a fresh nonce and the exact user-data the
    stand-in will execute. The nonce makes each launch's proof unique (a relaunch of the same
    dataset renders the same user-data), so the stand-in can refuse a copied one."""
    nonce = nonce or secrets.token_hex(8)
    mac = hmac.new(secret, nonce.encode() + b"\0" + user_data, hashlib.sha256).hexdigest()
    return f"{nonce}.{mac}"


def proven(secret: bytes, user_data: bytes, tag: str | None) -> bool:
    if not tag or "." not in tag:
        return False
    nonce = tag.split(".", 1)[0]
    return hmac.compare_digest(launch_proof(secret, user_data, nonce), tag)
