"""Submission files: parse and validate what a user dropped into ``submissions/`` (pure).

Whatever the bytes, ``parse_submission`` returns a ``Submission`` or raises
``InvalidSubmission`` with a one-line reason; nothing else escapes (fuzzed in
tests/unit/test_fuzz_submission.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .layout import RESERVED_DATASET_NAMES, InvalidKey, check_group_key, dataset_name, shown

MAX_SUBMISSION_BYTES = 256 * 1024
MAX_DATASETS = 1000
TIMESTAMP = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
FIELDS = ("dataname", "configname", "timestamp", "instance_type")
INSTANCE_TYPE = re.compile(r"[a-z0-9][a-z0-9-]*\.[a-z0-9]+")
UTF8_BOM = b"\xef\xbb\xbf"
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
    instance_type: str | None = None

    @property
    def datasets(self) -> dict[str, str]:
        """Dataset name (the key's last part) -> key."""
        return {dataset_name(k): k for k in self.datanames}


def _load(raw: bytes, example: str) -> Any:
    """The JSON document; a UTF-8 BOM is skipped, as browsers and editors do."""
    if raw.startswith(UTF8_BOM):  # Windows Notepad writes one; it carries no meaning
        raw = raw[len(UTF8_BOM) :]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidSubmission(
            f"the submission file is not valid JSON: it is not UTF-8 text (byte "
            f"{raw[e.start]:#04x} at position {e.start}); save it as UTF-8 like {example}"
        ) from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidSubmission(
            f"the submission file is not valid JSON ({e}); write it like {example}"
        ) from e
    except RecursionError as e:  # thousands of nested brackets
        raise InvalidSubmission(
            f"the submission file is not valid JSON: it nests too deeply; write it like {example}"
        ) from e
    except ValueError as e:  # e.g. an integer past Python's 4300-digit limit
        raise InvalidSubmission(
            f"the submission file is not valid JSON ({str(e).splitlines()[0][:200]}); "
            f"write it like {example}"
        ) from e


def _optional(
    doc: dict[str, Any], field: str, pattern: re.Pattern[str], problem: str
) -> str | None:
    """An optional text field, which must match ``pattern`` when present."""
    value = doc.get(field)
    if value is not None and (not isinstance(value, str) or not pattern.fullmatch(value)):
        raise InvalidSubmission(f"'{field}' {shown(value)} {problem}")
    return value


def parse_submission(raw: bytes, group: str) -> Submission:
    example = EXAMPLE.replace("GROUP", group)
    if len(raw) > MAX_SUBMISSION_BYTES:
        raise InvalidSubmission(
            f"the submission file is over the {MAX_SUBMISSION_BYTES}-byte limit "
            f"({len(raw)} bytes or more); list at most a few hundred datasets per submission"
        )
    doc = _load(raw, example)
    if not isinstance(doc, dict):
        raise InvalidSubmission(f"the submission must be a JSON object like {example}")
    unknown = sorted(set(doc) - set(FIELDS))
    if unknown:
        listed = ", ".join(shown(name) for name in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise InvalidSubmission(f"unknown field(s) {listed}{more}; allowed: {', '.join(FIELDS)}")
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
        keys = tuple(check_group_key(k, group, "dataname", folder_ok=True) for k in names)
        config = doc.get("configname")
        if config is not None:
            config = check_group_key(config, group, "configname")
    except InvalidKey as e:
        raise InvalidSubmission(str(e)) from e
    seen: dict[str, str] = {}
    for key in keys:
        name = dataset_name(key)
        if name in RESERVED_DATASET_NAMES:
            raise InvalidSubmission(
                f"dataset {shown(key)} is named {name!r}, which the job folder uses for "
                "itself (process_results/end.txt); rename the file"
            )
        if name in seen and seen[name] != key:
            raise InvalidSubmission(
                f"datasets {shown(seen[name])} and {shown(key)} share the file name "
                f"{shown(name)}; results are stored by file name, so rename one"
            )
        seen[name] = key
    timestamp = _optional(
        doc,
        "timestamp",
        TIMESTAMP,
        "cannot name a folder: use letters, digits, '.', '_', '-' (e.g. 20261124T203000Z), "
        "or leave it out",
    )
    instance_type = _optional(
        doc,
        "instance_type",
        INSTANCE_TYPE,
        "is not an EC2 instance type such as m5.xlarge; leave it out to use the analysis's own",
    )
    return Submission(
        datanames=tuple(dict.fromkeys(keys)),
        configname=config,
        timestamp=timestamp,
        instance_type=instance_type,
    )
