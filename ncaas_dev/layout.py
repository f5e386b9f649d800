"""The S3 layout of one analysis bucket (pure: names in, keys out).

s3://{analysis}/{group}/inputs|configs|submissions|results/job_{ts}/...
Internal records of the dispatcher live under ``.ncaas/`` at the bucket root, outside every
group's prefix, so no group can read or forge them.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import unicodedata
from dataclasses import dataclass

GROUP_FOLDERS = ("inputs", "configs", "submissions", "results")
SUBMISSION_SUFFIX = "submit.json"
CANCEL_SUFFIX = "cancel.json"  # {group}/submissions/{id}_cancel.json cancels a job of the group
INTERNAL_PREFIX = ".ncaas"
BLUEPRINT_RECORD = f"{INTERNAL_PREFIX}/blueprint.json"
# The index of open jobs: one empty marker per job not yet terminal, so a sweep reads only those.
# OPEN_INDEX_RECORD says the index covers every job (the sweep wrote it after listing results/).
OPEN_PREFIX = f"{INTERNAL_PREFIX}/open/"
OPEN_INDEX_RECORD = f"{INTERNAL_PREFIX}/open-index.json"
# Where the sweep's listing of submissions may start, and when it last listed them all.
SWEEP_RECORD = f"{INTERNAL_PREFIX}/sweep.json"
# The blueprint's rule for group names: a submission under any other first segment (".ncaas",
# "..", odd Unicode) belongs to no group that can exist, so it is not a submission at all.
GROUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
# Names the job folder gives its own files: a dataset called like one would clash with them.
RESERVED_DATASET_NAMES = frozenset({"end.txt"})
# Characters that make a key print as something else: controls (Cc), lone surrogates (Cs),
# line separators (Zl, Zp) and invisible formatting (Cf: zero-width characters and the
# bidirectional overrides behind "gpj.exe"-style spoofing).
_BAD_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp", "Cf"})
SHOWN_CHARS = 120


def group_prefix(group: str, folder: str) -> str:
    return f"{group}/{folder}/"


def submissions_prefix(group: str) -> str:
    return group_prefix(group, "submissions")


def _is_request_key(key: str, suffix: str) -> bool:
    parts = key.split("/")
    return (
        len(parts) == 3
        and GROUP_NAME.fullmatch(parts[0]) is not None
        and parts[1] == "submissions"
        and parts[2].endswith(suffix)
    )


# What else belongs in submissions/: cancel requests, and the pointer naming a submission's job.
LEGITIMATE_SUFFIXES = ("_cancel.json", f"{SUBMISSION_SUFFIX}.job")


def not_a_submission(key: str) -> str | None:
    """Why an object in a group's ``submissions/`` starts nothing (None when it is a submission,
    a cancel request or a job pointer, or lies elsewhere): said where its writer will look."""
    parts = key.split("/")
    if len(parts) != 3 or parts[1] != "submissions" or not parts[2]:
        return None
    name = parts[2]
    if name.endswith(SUBMISSION_SUFFIX) or name.endswith(LEGITIMATE_SUFFIXES):
        return None
    stem = name[: -len(".json")] if name.lower().endswith(".json") else name
    if stem.lower().endswith("_submit"):
        stem = stem[: -len("_submit")]
    return (
        f"{key} is not a submission: only names ending in _{SUBMISSION_SUFFIX} (lower case) "
        f"start a job; rename it {parts[0]}/submissions/{stem}_{SUBMISSION_SUFFIX}"
    )


def is_submission_key(key: str) -> bool:
    """``{group}/submissions/{id}_submit.json`` with a group name a blueprint can hold."""
    return _is_request_key(key, SUBMISSION_SUFFIX)


def is_cancel_key(key: str) -> bool:
    """``{group}/submissions/{id}_cancel.json`` with a group name a blueprint can hold."""
    return _is_request_key(key, CANCEL_SUFFIX)


def claim_key(submission_key: str, etag: str) -> str:
    """One claim per (submission object, version): a repeated event finds it taken."""
    # surrogatepass: any str has a stable digest, even one no S3 key can be.
    text = f"{submission_key}\0{etag.strip(chr(34))}"
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{INTERNAL_PREFIX}/claims/{digest}.json"


POINTER_SUFFIX = ".job"
# A job folder's name as the dispatcher makes it: one path segment, nothing to climb out with.
JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")


def submission_pointer_key(submission_key: str) -> str:
    """``{group}/submissions/{id}_submit.json.job``: names the job folder of a submission, for
    clients that cannot read ``.ncaas/`` (a group's users). Not a submission key itself."""
    return submission_key + POINTER_SUFFIX


def pointer_doc(submission_key: str, etag: str, job: str) -> dict[str, str]:
    """The pointer's body: the job folder (within the submission's own group) and the version
    of the submission it was made for (a new version of the same file is a new submission)."""
    return {"job": job, "submission": submission_key, "etag": etag.strip('"')}


def pointed_job(doc: object, submission_key: str, etag: str | None = None) -> str | None:
    """The job a pointer names, if it is a pointer for this submission (and version); None for
    anything else. Group users can write their prefix, so a pointer is only a hint: the job is
    a bare folder name, resolved inside the submission's own group and never elsewhere."""
    if not isinstance(doc, dict) or doc.get("submission") != submission_key:
        return None
    if etag is not None and doc.get("etag") != etag.strip('"'):
        return None
    job = doc.get("job")
    if not isinstance(job, str) or not JOB_NAME.fullmatch(job) or ".." in job:
        return None
    return job


def open_marker(group: str, job: str) -> str:
    return f"{OPEN_PREFIX}{group}/{job}"


def dataset_name(key: str) -> str:
    """The dataset's name: a file key's last part, or a folder key's (``a/inputs/tifs/``)."""
    return posixpath.basename(key.rstrip("/")) if is_folder_key(key) else posixpath.basename(key)


def is_folder_key(key: str) -> bool:
    """A ``dataname`` ending in ``/`` names a folder: every object under it is one dataset."""
    return key.endswith("/")


def name_claim_key(group: str, job: str) -> str:
    """Taken by the first submission to name a job folder it may not share (a NeuroCAAS
    timestamp): a second one finds it taken, whoever writes first."""
    return f"{INTERNAL_PREFIX}/names/{group}/{job}.json"


class InvalidKey(ValueError):
    """A key a submission may not use; the message says why in plain words."""


def shown(value: object) -> str:
    """``repr`` cut to a length a one-line message can carry."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[: SHOWN_CHARS - 5]}...{text[-2:]}"


def _unprintable(key: str) -> bool:
    return any(unicodedata.category(ch) in _BAD_CATEGORIES for ch in key)


def check_group_key(key: object, group: str, field: str, folder_ok: bool = False) -> str:
    """Return ``key`` if it is a plain object key inside ``group``'s own prefix (or, with
    ``folder_ok``, a folder prefix ending in ``/``)."""
    if not isinstance(key, str) or not key:
        raise InvalidKey(
            f"'{field}' must be an S3 key such as {group}/inputs/rec.bin, not {shown(key)}"
        )
    if _unprintable(key):
        raise InvalidKey(
            f"'{field}' {shown(key)} contains control characters (or invisible, "
            "direction-changing or broken Unicode ones); rename the file with plain characters"
        )
    if len(key.encode()) > 1024:
        raise InvalidKey(f"'{field}' is longer than S3's 1024-byte key limit")
    if key.startswith("/") or key.startswith("s3://") or "\\" in key:
        raise InvalidKey(
            f"'{field}' {shown(key)} is an absolute path; give a key inside your group's prefix, "
            f"such as {group}/inputs/rec.bin"
        )
    parts = key.split("/")
    if folder_ok and is_folder_key(key):
        parts = parts[:-1]
    if ".." in parts or "." in parts or "" in parts:
        raise InvalidKey(f"'{field}' {shown(key)} contains '..', '.' or an empty path segment")
    if parts[0] != group:
        raise InvalidKey(
            f"'{field}' {shown(key)} is outside your group's prefix '{group}/': "
            "a submission may only use its own group's data"
        )
    if len(parts) < 3:
        raise InvalidKey(
            f"'{field}' {shown(key)} must point to a file, e.g. {group}/inputs/rec.bin"
        )
    if folder_ok and is_folder_key(key) and parts[1] != "inputs":
        # A runner may list only inside inputs/ (cloud/deploy/policies.py): elsewhere the folder
        # would be refused on AWS halfway through a job, after passing offline.
        raise InvalidKey(
            f"'{field}' {shown(key)} is a folder outside {group}/inputs/; a folder dataset "
            f"must sit under it (e.g. {group}/inputs/session1/): move it there, then submit again"
        )
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

    def dataset_status(self, dataset: str) -> str:
        """NeuroCAAS's per-dataset status file (``compat: neurocaas`` only); JSON inside."""
        return f"{self.root}logs/DATASET_NAME:{dataset}_STATUS.txt"

    def outputs(self, dataset: str) -> str:
        return f"{self.root}process_results/{dataset}/"

    @property
    def end(self) -> str:
        return f"{self.root}process_results/end.txt"
