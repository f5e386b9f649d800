"""Submission files: what runs, and plain-words rejections for everything else."""

from __future__ import annotations

import json

import pytest

from ncaas_dev.submission import (
    MAX_DATASETS,
    MAX_SUBMISSION_BYTES,
    InvalidSubmission,
    parse_submission,
)


def raw(doc: object) -> bytes:
    return json.dumps(doc).encode()


def test_single_key_with_config_and_timestamp() -> None:
    sub = parse_submission(
        raw(
            {
                "dataname": "labA/inputs/rec1.bin",
                "configname": "labA/configs/params.yaml",
                "timestamp": "20261124T203000Z",
            }
        ),
        "labA",
    )
    assert sub.datanames == ("labA/inputs/rec1.bin",)
    assert sub.configname == "labA/configs/params.yaml"
    assert sub.timestamp == "20261124T203000Z"
    assert sub.datasets == {"rec1.bin": "labA/inputs/rec1.bin"}


def test_list_of_keys_keeps_their_order() -> None:
    keys = ["labA/inputs/b.bin", "labA/inputs/a.bin", "labA/inputs/deep/er/c.bin"]
    sub = parse_submission(raw({"dataname": keys}), "labA")
    assert sub.datanames == tuple(keys)
    assert list(sub.datasets) == ["b.bin", "a.bin", "c.bin"]


def test_configname_and_timestamp_are_optional() -> None:
    sub = parse_submission(raw({"dataname": "labA/inputs/rec1.bin"}), "labA")
    assert (sub.configname, sub.timestamp) == (None, None)
    sub = parse_submission(
        raw({"dataname": "labA/inputs/rec1.bin", "configname": None, "timestamp": None}), "labA"
    )
    assert (sub.configname, sub.timestamp) == (None, None)


def test_repeated_key_is_collapsed() -> None:
    key = "labA/inputs/rec1.bin"
    sub = parse_submission(raw({"dataname": [key, "labA/inputs/rec2.bin", key]}), "labA")
    assert sub.datanames == (key, "labA/inputs/rec2.bin")


def test_exactly_max_datasets_is_allowed() -> None:
    keys = [f"labA/inputs/r{i}.bin" for i in range(MAX_DATASETS)]
    assert len(parse_submission(raw({"dataname": keys}), "labA").datanames) == MAX_DATASETS


def test_timestamp_with_dots_dashes_underscores() -> None:
    sub = parse_submission(raw({"dataname": "labA/i/x", "timestamp": "2026-11-24_20.30"}), "labA")
    assert sub.timestamp == "2026-11-24_20.30"


# (raw submission, words the message must hold)
REJECTED = {
    "bad json": (b'{"dataname": ', "not valid JSON"),
    "not utf-8": (b"\xff\xfe\x00", "not valid JSON"),
    "empty file": (b"", "not valid JSON"),
    "array": (raw(["labA/inputs/rec1.bin"]), "must be a JSON object"),
    "string": (raw("labA/inputs/rec1.bin"), "must be a JSON object"),
    "missing dataname": (raw({"configname": "labA/configs/p"}), "has no 'dataname'"),
    "empty list": (raw({"dataname": []}), "non-empty list of keys"),
    "number": (raw({"dataname": 7}), "non-empty list of keys"),
    "object": (raw({"dataname": {"k": "labA/inputs/x"}}), "non-empty list of keys"),
    "too many": (raw({"dataname": ["labA/i/x"] * (MAX_DATASETS + 1)}), "at most 1000"),
    "other group": (raw({"dataname": "labB/inputs/x"}), "outside your group's prefix 'labA/'"),
    "group prefix lookalike": (raw({"dataname": "labAB/inputs/x"}), "outside your group"),
    "other group in list": (
        raw({"dataname": ["labA/inputs/x", "labB/inputs/y"]}),
        "'labB/inputs/y' is outside your group's prefix",
    ),
    "config of other group": (
        raw({"dataname": "labA/inputs/x", "configname": "labB/configs/p"}),
        "'configname' 'labB/configs/p' is outside",
    ),
    "dotdot": (raw({"dataname": "labA/inputs/../../labB/x"}), "contains '..'"),
    "dot": (raw({"dataname": "labA/./inputs/x"}), "'.'"),
    "absolute": (raw({"dataname": "/labA/../labB/x"}), "is an absolute path"),
    "s3 url": (raw({"dataname": "s3://spike-detect/labA/inputs/x"}), "is an absolute path"),
    "backslash": (raw({"dataname": "labA\\inputs\\x"}), "absolute path"),
    "empty segment": (raw({"dataname": "labA//x"}), "empty path segment"),
    "trailing slash": (raw({"dataname": "labA/inputs/"}), "must point to a file"),
    "folder config": (
        raw({"dataname": "labA/inputs/x", "configname": "labA/configs/c/"}),
        "empty path segment",
    ),
    "folder, empty segment": (raw({"dataname": "labA/inputs//"}), "empty path segment"),
    "folder outside inputs": (
        raw({"dataname": "labA/results/job_1/"}),
        "'labA/results/job_1/' is a folder outside labA/inputs/",
    ),
    "folder in configs": (raw({"dataname": "labA/configs/set/"}), "must sit under it"),
    "instance type not a type": (
        raw({"dataname": "labA/inputs/x", "instance_type": "big one"}),
        "not an EC2 instance type",
    ),
    "no file part": (raw({"dataname": "labA/inputs"}), "must point to a file"),
    "group only": (raw({"dataname": "labA"}), "must point to a file"),
    "empty key": (raw({"dataname": ""}), "must be an S3 key such as labA/inputs/rec.bin"),
    "number key": (raw({"dataname": [1, 2]}), "must be an S3 key"),
    "null key": (raw({"dataname": [None]}), "must be an S3 key"),
    "number config": (raw({"dataname": "labA/i/x", "configname": 3}), "'configname' must be"),
    "newline": (raw({"dataname": "labA/inputs/a\nb"}), "control characters"),
    "nul": (raw({"dataname": "labA/inputs/a\u0000b"}), "control characters"),
    "delete char": (raw({"dataname": "labA/inputs/a\u007fb"}), "control characters"),
    "too long key": (raw({"dataname": "labA/inputs/" + "x" * 1024}), "1024-byte key limit"),
    "unknown field": (raw({"dataname": "labA/i/x", "datanames": "y"}), "unknown field(s)"),
    "slash timestamp": (raw({"dataname": "labA/i/x", "timestamp": "2026/11/24"}), "timestamp"),
    "spaced timestamp": (raw({"dataname": "labA/i/x", "timestamp": "2026 11 24"}), "timestamp"),
    "dotdot timestamp": (raw({"dataname": "labA/i/x", "timestamp": ".."}), "cannot name a folder"),
    "number timestamp": (raw({"dataname": "labA/i/x", "timestamp": 2026}), "cannot name a folder"),
    "same file name": (
        raw({"dataname": ["labA/inputs/day1/rec.bin", "labA/inputs/day2/rec.bin"]}),
        "share the file name 'rec.bin'",
    ),
}


@pytest.mark.parametrize(("data", "words"), REJECTED.values(), ids=REJECTED.keys())
def test_rejected_with_plain_words(data: bytes, words: str) -> None:
    with pytest.raises(InvalidSubmission) as caught:
        parse_submission(data, "labA")
    assert words in str(caught.value)


def test_unknown_field_message_lists_the_allowed_ones() -> None:
    with pytest.raises(InvalidSubmission) as caught:
        parse_submission(raw({"dataname": "labA/i/x", "config": "labA/c/p"}), "labA")
    assert "'config'" in str(caught.value)
    assert "allowed: dataname, configname, timestamp" in str(caught.value)


def test_bad_json_shows_an_example_for_the_group() -> None:
    with pytest.raises(InvalidSubmission) as caught:
        parse_submission(b"dataname=labA/inputs/x", "labA")
    assert '"dataname": "labA/inputs/rec.bin"' in str(caught.value)


def test_oversized_submission_is_refused_before_parsing() -> None:
    padding = " " * MAX_SUBMISSION_BYTES
    data = f'{{"dataname": "labA/inputs/x"}}{padding}'.encode()
    with pytest.raises(InvalidSubmission) as caught:
        parse_submission(data, "labA")
    assert f"over the {MAX_SUBMISSION_BYTES}-byte limit" in str(caught.value)
    assert str(len(data)) in str(caught.value)


def test_invalid_submission_is_a_value_error() -> None:
    assert issubclass(InvalidSubmission, ValueError)
