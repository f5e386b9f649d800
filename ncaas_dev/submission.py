"""Submission files: parse and validate what a user dropped into ``submissions/`` (pure)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from .layout import InvalidKey, check_group_key, dataset_name

MAX_SUBMISSION_BYTES = 256 * 1024
MAX_DATASETS = 1000
TIMESTAMP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
EXAMPLE = (
    '{"dataname": "GROUP/inputs/rec.bin", "configname": "GROUP/configs/params.yaml", '
    '"timestamp": "20261124T203000Z"}'
)


class InvalidSubmission(ValueError):
    """The submission cannot run; the message says what was wrong and what to do."""


@dataclass(frozen=True)
class Submission:
    datanames: tuple[str, ...]
    configname: str | None
    timestamp: str | None

    @property
    def datasets(self) -> dict[str, str]:
        """Dataset name (the key's last part) -> key."""
        return {dataset_name(k): k for k in self.datanames}


def parse_submission(raw: bytes, group: str) -> Submission:
    example = EXAMPLE.replace("GROUP", group)
    if len(raw) > MAX_SUBMISSION_BYTES:
        raise InvalidSubmission(
            f"the submission file is {len(raw)} bytes, over the {MAX_SUBMISSION_BYTES}-byte "
            "limit; list at most a few hundred datasets per submission"
        )
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidSubmission(
            f"the submission file is not valid JSON ({e}); write it like {example}"
        ) from e
    if not isinstance(doc, dict):
        raise InvalidSubmission(f"the submission must be a JSON object like {example}")
    unknown = sorted(set(doc) - {"dataname", "configname", "timestamp"})
    if unknown:
        raise InvalidSubmission(
            f"unknown field(s) {', '.join(map(repr, unknown))}; "
            "allowed: dataname, configname, timestamp"
        )
    if "dataname" not in doc:
        raise InvalidSubmission(f"the submission has no 'dataname'; write it like {example}")
    names = doc["dataname"]
    names = [names] if isinstance(names, str) else names
    if not isinstance(names, list) or not names:
        raise InvalidSubmission("'dataname' must be a key or a non-empty list of keys")
    if len(names) > MAX_DATASETS:
        raise InvalidSubmission(
            f"'dataname' lists {len(names)} datasets; at most {MAX_DATASETS} per submission"
        )
    try:
        keys = tuple(check_group_key(k, group, "dataname") for k in names)
        config = doc.get("configname")
        if config is not None:
            config = check_group_key(config, group, "configname")
    except InvalidKey as e:
        raise InvalidSubmission(str(e)) from e
    seen: dict[str, str] = {}
    for key in keys:
        name = dataset_name(key)
        if name in seen and seen[name] != key:
            raise InvalidSubmission(
                f"datasets {seen[name]!r} and {key!r} share the file name {name!r}; "
                "results are stored by file name, so rename one"
            )
        seen[name] = key
    timestamp = doc.get("timestamp")
    if timestamp is not None and (not isinstance(timestamp, str) or not TIMESTAMP.match(timestamp)):
        raise InvalidSubmission(
            f"'timestamp' {timestamp!r} cannot name a folder: use letters, digits, '.', '_', '-' "
            "(e.g. 20261124T203000Z), or leave it out"
        )
    return Submission(datanames=tuple(dict.fromkeys(keys)), configname=config, timestamp=timestamp)
