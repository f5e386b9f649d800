"""The EC2 stand-in's launch proof: made with the stack's secret, bound to the exact user-data,
unique per launch (signing.py)."""

from __future__ import annotations

import stat
from pathlib import Path

from ncaas_dev.cloud.ec2.signing import launch_proof, proven, stack_secret


def test_a_proof_holds_for_its_user_data_only(tmp_path: Path) -> None:
    secret = stack_secret(tmp_path)
    assert stack_secret(tmp_path) == secret  # made once, then read
    assert stat.S_IMODE((tmp_path / "ec2-launch.key").stat().st_mode) == 0o600
    proof = launch_proof(secret, b"#!/bin/bash\nrunner\n")
    assert proven(secret, b"#!/bin/bash\nrunner\n", proof)
    assert not proven(secret, b"#!/bin/bash\nrunner; curl evil\n", proof)
    assert not proven(b"another stack's secret", b"#!/bin/bash\nrunner\n", proof)
    nonce, mac = proof.split(".")
    assert not proven(secret, b"#!/bin/bash\nrunner\n", mac)  # no nonce
    assert not proven(secret, b"#!/bin/bash\nrunner\n", f"{nonce}x.{mac}")
    assert not proven(secret, b"", None)


def test_each_launch_gets_its_own_proof(tmp_path: Path) -> None:
    secret = stack_secret(tmp_path)
    assert launch_proof(secret, b"same") != launch_proof(secret, b"same")
