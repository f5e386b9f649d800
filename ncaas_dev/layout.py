"""The S3 layout of one analysis bucket (pure: names in, keys out).

s3://{analysis}/{group}/inputs|configs|submissions|results/job_{ts}/...
Internal records of the dispatcher live under ``.ncaas/`` at the bucket root, outside every
group's prefix, so no group can read or forge them.
"""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass

GROUP_FOLDERS = ("inputs", "configs", "submissions", "results")
SUBMISSION_SUFFIX = "submit.json"
INTERNAL_PREFIX = ".ncaas"
BLUEPRINT_RECORD = f"{INTERNAL_PREFIX}/blueprint.json"


def group_prefix(group: str, folder: str) -> str:
    return f"{group}/{folder}/"


def submissions_prefix(group: str) -> str:
    return group_prefix(group, "submissions")


def is_submission_key(key: str) -> bool:
    parts = key.split("/")
    return len(parts) == 3 and parts[1] == "submissions" and parts[2].endswith(SUBMISSION_SUFFIX)


def claim_key(submission_key: str, etag: str) -> str:
    """One claim per (submission object, version): a repeated event finds it taken."""
    digest = hashlib.sha256(f"{submission_key}\0{etag.strip(chr(34))}".encode()).hexdigest()
    return f"{INTERNAL_PREFIX}/claims/{digest}.json"


def dataset_name(key: str) -> str:
    return posixpath.basename(key)


class InvalidKey(ValueError):
    """A key a submission may not use; the message says why in plain words."""


def check_group_key(key: object, group: str, field: str) -> str:
    """Return ``key`` if it is a plain object key inside ``group``'s own prefix."""
    if not isinstance(key, str) or not key:
        raise InvalidKey(f"'{field}' must be an S3 key such as {group}/inputs/rec.bin")
    if len(key.encode()) > 1024:
        raise InvalidKey(f"'{field}' is longer than S3's 1024-byte key limit")
    if key.startswith("/") or key.startswith("s3://") or "\\" in key:
        raise InvalidKey(
            f"'{field}' {key!r} is an absolute path; give a key inside your group's prefix, "
            f"such as {group}/inputs/rec.bin"
        )
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
        raise InvalidKey(f"'{field}' {key!r} contains control characters")
    parts = key.split("/")
    if ".." in parts or "." in parts or "" in parts:
        raise InvalidKey(f"'{field}' {key!r} contains '..', '.' or an empty path segment")
    if parts[0] != group:
        raise InvalidKey(
            f"'{field}' {key!r} is outside your group's prefix '{group}/': "
            "a submission may only use its own group's data"
        )
    if len(parts) < 3:
        raise InvalidKey(f"'{field}' {key!r} must point to a file, e.g. {group}/inputs/rec.bin")
    return key


@dataclass(frozen=True)
class JobPaths:
    """Keys of one job folder: ``{group}/results/{job}/``."""

    group: str
    job: str

    @property
    def root(self) -> str:
        return f"{self.group}/results/{self.job}/"

    @property
    def status(self) -> str:
        return f"{self.root}logs/status.json"

    @property
    def certificate(self) -> str:
        return f"{self.root}logs/certificate.txt"

    def log(self, dataset: str) -> str:
        return f"{self.root}logs/{dataset}.log"

    def outputs(self, dataset: str) -> str:
        return f"{self.root}process_results/{dataset}/"

    @property
    def end(self) -> str:
        return f"{self.root}process_results/end.txt"
