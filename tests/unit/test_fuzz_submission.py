"""Fuzzed submissions and keys: a clear one-line rejection or a correct, confined submission.

Thousands of random and adversarial submission files (bad JSON, huge files, odd Unicode, a
BOM, ``..``, other groups' keys, absolute paths, backslashes, empty segments, thousands of
datasets, duplicate names, wrong types, deep nesting) go through ``parse_submission``. Whatever
comes in, the only exception is ``InvalidSubmission`` with a one-line reason, and an accepted
submission never names a key outside the group's own prefix.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ncaas_dev.blueprint import GROUP_NAME as BLUEPRINT_GROUP_NAME
from ncaas_dev.layout import (
    GROUP_NAME,
    INTERNAL_PREFIX,
    InvalidKey,
    check_group_key,
    claim_key,
    is_submission_key,
)
from ncaas_dev.submission import (
    MAX_DATASETS,
    MAX_SUBMISSION_BYTES,
    TIMESTAMP,
    InvalidSubmission,
    Submission,
    parse_submission,
)

GROUP = "labA"
# About 4,000 examples in all by default (~15 s); NCAAS_FUZZ_SCALE=10 for a deeper run.
SCALE = float(os.environ.get("NCAAS_FUZZ_SCALE", "1"))


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


FEW = fuzz(40)
MAX_REASON_CHARS = 600
BAD_CATEGORIES = {"Cc", "Cs", "Zl", "Zp", "Cf"}

# -- strategies ------------------------------------------------------------------------------
ODD_TEXT = st.text(
    st.characters(codec=None, categories=None),  # every code point, surrogates included
    max_size=12,
)
NASTY = [
    "",
    ".",
    "..",
    "...",
    " ",
    "\x00",
    "\n",
    "\u202e",  # right-to-left override
    "\u200b",  # zero-width space
    "\ufeff",  # BOM as a character
    "\u2028",  # line separator
    "e\u0301",  # combining acute accent
    "\ud800",  # lone surrogate (JSON escapes can carry one)
    "\\",
    "a\\b",
    "%2e%2e",
    "~",
    "end.txt",
    "rec.bin",
    "名前.bin",
    "x" * 300,
]
GROUPS = [GROUP, "labB", "labAB", "lab", "LABA", "labA ", INTERNAL_PREFIX, "..", "", "s3:", "/labA"]
segment = st.one_of(st.sampled_from(NASTY), ODD_TEXT, st.sampled_from(["inputs", "configs"]))
adversarial_key = st.one_of(
    st.builds(
        lambda group, rest, sep: group + sep + sep.join(rest),
        st.sampled_from(GROUPS),
        st.lists(segment, min_size=0, max_size=4),
        st.sampled_from(["/", "/", "/", "\\", "//"]),
    ),
    st.builds(lambda p, k: p + k, st.sampled_from(["/", "s3://bucket/", "./", "../"]), ODD_TEXT),
    ODD_TEXT,
)
good_name = st.text(
    st.characters(
        categories=["L", "N", "Mn", "Zs", "P", "S"],
        exclude_characters="/\\",
    ),
    min_size=1,
    max_size=20,
).filter(lambda s: s not in (".", "..", "end.txt"))
good_key = st.builds(
    lambda folders, name: "/".join([GROUP, *folders, name]),
    st.lists(good_name, min_size=1, max_size=3),
    good_name,
)
json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), ODD_TEXT
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(ODD_TEXT, inner, max_size=4)
    ),
    max_leaves=20,
)
dataname_value = st.one_of(
    adversarial_key,
    good_key,
    st.lists(st.one_of(adversarial_key, good_key, json_value), max_size=6),
    json_value,
)
field_name = st.sampled_from(["dataname", "configname", "timestamp", "datanames", "", "\x00"])
timestamp_value = st.one_of(
    st.none(), st.from_regex(TIMESTAMP, fullmatch=True), ODD_TEXT, json_value
)


@st.composite
def documents(draw: st.DrawFn) -> Any:
    doc: dict[str, Any] = {}
    if draw(st.booleans()):
        doc["dataname"] = draw(dataname_value)
    if draw(st.booleans()):
        doc["configname"] = draw(st.one_of(st.none(), adversarial_key, good_key, json_value))
    if draw(st.booleans()):
        doc["timestamp"] = draw(timestamp_value)
    for _ in range(draw(st.integers(0, 1))):
        doc[draw(field_name)] = draw(json_value)
    return draw(st.one_of(st.just(doc), json_value)) if draw(st.integers(0, 9)) == 0 else doc


def encode(doc: Any, ascii_only: bool, bom: bool) -> bytes:
    """JSON the way various clients write it; lone surrogates become broken UTF-8 or escapes."""
    text = json.dumps(doc, ensure_ascii=ascii_only)
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8", "surrogatepass")


submission_bytes = st.one_of(
    st.builds(encode, documents(), st.booleans(), st.booleans()),
    st.binary(max_size=2048),
    st.builds(
        lambda b, cut: b[:cut],
        st.builds(encode, documents(), st.booleans(), st.just(False)),
        st.integers(0, 200),
    ),
)


# -- what an accepted submission must be -----------------------------------------------------
def assert_confined(sub: Submission, group: str) -> None:
    """Every key lies inside the group's prefix and is a plain, printable object key."""
    keys = [*sub.datanames, *([sub.configname] if sub.configname else [])]
    assert 1 <= len(sub.datanames) <= MAX_DATASETS
    for key in keys:
        parts = key.split("/")
        if key in sub.datanames and key.endswith("/"):  # a folder dataset: its prefix
            parts = parts[:-1]
        assert parts[0] == group and len(parts) >= 3, key
        assert not {"", ".", ".."} & set(parts), key
        assert "\\" not in key and not key.startswith(("/", "s3://")), key
        assert not any(unicodedata.category(ch) in BAD_CATEGORIES for ch in key), key
        assert len(key.encode("utf-8")) <= 1024
    names = [k.rstrip("/").rsplit("/", 1)[1] for k in sub.datanames]
    assert len(names) == len(set(names)) and "end.txt" not in names
    assert sub.timestamp is None or TIMESTAMP.fullmatch(sub.timestamp)


def parse_or_reason(raw: bytes, group: str = GROUP) -> Submission | str:
    """The submission, or the rejection's reason after checking it reads as one line."""
    try:
        sub = parse_submission(raw, group)
    except InvalidSubmission as e:
        reason = str(e)
        assert reason and "\n" not in reason and "\r" not in reason, repr(reason)
        assert len(reason) <= MAX_REASON_CHARS, len(reason)
        assert reason.isprintable(), repr(reason)
        return reason
    assert_confined(sub, group)
    return sub


# -- properties ------------------------------------------------------------------------------
@fuzz(1000)
@given(submission_bytes)
@example(b"\xef\xbb\xbf" + json.dumps({"dataname": "labA/inputs/x"}).encode())
@example(b"[" * 100_000 + b"]" * 100_000)
@example(b'{"dataname": ' + b"[" * 5000 + b"]" * 5000 + b"}")
@example(b'{"dataname": ' + b"9" * 5000 + b"}")
@example(b'{"dataname": "labA/inputs/\\ud800"}')
@example(b'{"dataname": "labA/inputs/x", "timestamp": "2026\\n"}')
@example(b'{"dataname": "labA/inputs/end.txt"}')
@example(b'{"dataname": "labA/inputs/gpj.\\u202eexe"}')
@example("\ufeff".encode("utf-16"))
def test_any_bytes_give_a_submission_or_a_one_line_reason(raw: bytes) -> None:
    parse_or_reason(raw)


@fuzz(300)
@given(st.lists(good_key, min_size=1, max_size=8, unique_by=lambda k: k.rsplit("/", 1)[1]))
def test_plain_keys_in_the_groups_prefix_are_accepted(keys: list[str]) -> None:
    result = parse_or_reason(json.dumps({"dataname": keys}).encode())
    assert isinstance(result, Submission), result
    assert list(result.datanames) == keys


@fuzz(800)
@given(st.lists(adversarial_key, min_size=1, max_size=4), st.booleans())
def test_adversarial_keys_are_rejected_unless_plainly_inside(keys: list[str], bom: bool) -> None:
    result = parse_or_reason(encode({"dataname": keys}, ascii_only=True, bom=bom))
    plain = all(_plainly_inside(k) for k in keys)
    names = [k.rstrip("/").rsplit("/", 1)[-1] if _plainly_inside(k) else k for k in keys]
    if plain and len(set(names)) == len(set(keys)) and "end.txt" not in names:
        assert isinstance(result, Submission), result
    else:
        assert isinstance(result, str)


def _plainly_inside(key: str) -> bool:
    """The oracle, written apart from the code under test: what a careful reviewer accepts."""
    if "\\" in key or any(unicodedata.category(ch) in BAD_CATEGORIES for ch in key):
        return False
    parts = key.split("/")
    folder = key.endswith("/")
    if folder:  # a folder dataset (NeuroCAAS): the prefix must be plain, and in inputs/
        parts = parts[:-1]
    return (
        parts[0] == GROUP
        and (not folder or parts[1:2] == ["inputs"])
        and len(parts) >= 3
        and all(p not in ("", ".", "..") for p in parts)
        and len(key.encode("utf-8")) <= 1024
    )


@FEW
@given(st.integers(MAX_DATASETS - 3, MAX_DATASETS + 3), st.integers(0, 5), st.data())
def test_thousands_of_datasets_with_duplicates(count: int, dupes: int, data: st.DataObject) -> None:
    keys = [f"{GROUP}/inputs/r{i}.bin" for i in range(count)]
    for _ in range(dupes):  # an exact repeat collapses; the same name elsewhere is refused
        keys.append(data.draw(st.sampled_from(keys[:count])))
    other_folder = data.draw(st.booleans())
    if other_folder:
        keys.append(f"{GROUP}/inputs/again/r0.bin")
    result = parse_or_reason(json.dumps({"dataname": keys}).encode())
    if len(keys) > MAX_DATASETS:
        assert isinstance(result, str) and f"at most {MAX_DATASETS}" in result
    elif other_folder:
        assert isinstance(result, str) and "share the file name 'r0.bin'" in result
    else:
        assert isinstance(result, Submission) and len(result.datanames) == count


@FEW
@given(st.integers(MAX_SUBMISSION_BYTES - 64, MAX_SUBMISSION_BYTES * 3))
def test_huge_files_are_refused_by_size(size: int) -> None:
    body = json.dumps({"dataname": "labA/inputs/x.bin", "timestamp": "t"})
    raw = body.encode() + b" " * max(0, size - len(body))
    result = parse_or_reason(raw)
    if len(raw) > MAX_SUBMISSION_BYTES:
        assert isinstance(result, str) and "byte limit" in result
    else:
        assert isinstance(result, Submission)


def test_a_utf8_bom_is_accepted_like_a_browser_would() -> None:
    raw = b"\xef\xbb\xbf" + json.dumps({"dataname": "labA/inputs/x.bin"}).encode()
    result = parse_or_reason(raw)
    assert isinstance(result, Submission) and result.datanames == ("labA/inputs/x.bin",)


def test_utf16_is_refused_as_not_utf8() -> None:
    reason = parse_or_reason(json.dumps({"dataname": "labA/inputs/x"}).encode("utf-16"))
    assert isinstance(reason, str) and "not UTF-8 text" in reason


def test_deep_nesting_is_refused_plainly() -> None:
    reason = parse_or_reason(b'{"dataname": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    assert isinstance(reason, str) and "not valid JSON" in reason


def test_a_timestamp_with_a_trailing_newline_is_refused() -> None:
    reason = parse_or_reason(b'{"dataname": "labA/inputs/x", "timestamp": "2026\\n"}')
    assert isinstance(reason, str) and "cannot name a folder" in reason


def test_end_txt_cannot_be_a_dataset_name() -> None:
    reason = parse_or_reason(b'{"dataname": "labA/inputs/end.txt"}')
    assert isinstance(reason, str) and "rename the file" in reason


# -- keys, claims ----------------------------------------------------------------------------
@fuzz(600)
@given(st.one_of(adversarial_key, good_key, ODD_TEXT), st.sampled_from(GROUPS[:5]))
def test_check_group_key_never_lets_a_key_out(key: str, group: str) -> None:
    try:
        accepted = check_group_key(key, group, "dataname")
    except InvalidKey as e:
        assert "\n" not in str(e) and len(str(e)) <= MAX_REASON_CHARS
        return
    assert accepted == key and key.split("/")[0] == group and key.startswith(f"{group}/")


@fuzz(400)
@given(st.one_of(ODD_TEXT, adversarial_key, st.builds("/".join, st.lists(segment, max_size=4))))
@example(".ncaas/submissions/x_submit.json")
@example("../submissions/x_submit.json")
@example("labA/submissions/x_submit.json")
def test_submission_keys_name_a_possible_group(key: str) -> None:
    if is_submission_key(key):
        group, folder, name = key.split("/")
        assert re.fullmatch(BLUEPRINT_GROUP_NAME.pattern.strip("^$"), group)
        assert folder == "submissions" and name.endswith("submit.json")
        assert not group.startswith(".")


def test_group_name_rule_matches_the_blueprints() -> None:
    assert GROUP_NAME.pattern == BLUEPRINT_GROUP_NAME.pattern.strip("^$")


CLAIM = re.compile(rf"{re.escape(INTERNAL_PREFIX)}/claims/[0-9a-f]{{64}}\.json")


@fuzz(400)
@given(ODD_TEXT, ODD_TEXT, ODD_TEXT, ODD_TEXT)
def test_claim_keys_are_stable_confined_and_distinct(k1: str, e1: str, k2: str, e2: str) -> None:
    first = claim_key(k1, e1)
    assert CLAIM.fullmatch(first) and first == claim_key(k1, f'"{e1}"') == claim_key(k1, e1)
    if "\0" not in k1 + k2 and (k1, e1.strip('"')) != (k2, e2.strip('"')):
        assert claim_key(k2, e2) != first
