"""Fuzzed submissions written into S3 for the real dispatcher: it answers each, writes nowhere else.

Hypothesis generates a batch of submissions (valid ones naming real datasets with odd names,
near misses, and adversarial files); all are written into a fresh analysis bucket at once and
the session's dispatcher handles them. Each must end as the correct job (every dataset run) or
as a rejection with a one-line reason; the bucket, listed before and after, must have gained
nothing outside the submitting group's own prefix and the bucket's ``.ncaas/``; and the
dispatcher must still be alive and serving afterwards.

``NCAAS_FUZZ_DISPATCH_CASES`` sets the batch size: 50 by default (under a minute on a busy
2-core machine); ``NCAAS_FUZZ_DISPATCH_CASES=200`` for a deeper run.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ncaas_dev.client import Submitted
from ncaas_dev.containers import Engine
from ncaas_dev.layout import pointed_job, submission_pointer_key
from ncaas_dev.local.stack import PidFile
from ncaas_dev.settings import Settings
from ncaas_dev.status import State
from ncaas_dev.storage import Storage
from ncaas_dev.submission import TIMESTAMP, InvalidSubmission, parse_submission

from .jobs import Lab, copy_blueprint, provisioned

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CASES = int(os.environ.get("NCAAS_FUZZ_DISPATCH_CASES", "50"))
GROUPS = ("labA", "labB")  # the probe blueprint's; labZ is nobody's
ODD_NAMES = [
    "rec.bin",
    "my rec+1%20(final).bin",
    "cafe\u0301.bin",
    "日本語.bin",
    "colon:1,ro=false.bin",
    "brain-\U0001f9e0.bin",
    "-leading-dash.bin",
]
DEEP = "labA/inputs/sub/dir/deep.bin"
CONFIG = "labA/configs/cfg.json"
THEIRS = "labB/inputs/theirs.bin"


@dataclass
class Stage:
    lab: Lab
    existing: frozenset[str]


@pytest.fixture(scope="module")
def stage(
    tmp_path_factory: pytest.TempPathFactory,
    engine: Engine,
    storage: Storage,
    settings: Settings,
    dispatcher: int,
) -> Iterator[Stage]:
    """The probe analysis in a bucket of its own, with datasets under odd names."""
    folder = copy_blueprint(FIXTURES / "probe", tmp_path_factory.mktemp("fuzz-probe"), "ncaas-fuzz")
    with provisioned(engine, storage, settings, folder) as (loaded, _):
        lab = Lab(storage, loaded.blueprint.analysis)
        keys = [f"labA/inputs/{n}" for n in ODD_NAMES] + [DEEP, THEIRS]
        for key in keys:
            storage.put_bytes(lab.bucket, key, secrets.token_bytes(100))
        storage.put_bytes(lab.bucket, CONFIG, json.dumps({"lines": 1}).encode())
        yield Stage(lab, frozenset([*keys, CONFIG]))


# -- what gets submitted ----------------------------------------------------------------------
odd_text = st.text(st.characters(codec=None, categories=None), max_size=10)
existing_data = st.sampled_from([f"labA/inputs/{n}" for n in ODD_NAMES] + [DEEP])
near_miss = st.one_of(
    st.sampled_from(
        [
            THEIRS,
            "labA/inputs/missing.bin",
            "labA/inputs/../../labB/inputs/theirs.bin",
            "/labA/inputs/rec.bin",
            "labA\\inputs\\rec.bin",
            "labA//inputs/rec.bin",
            "labA/inputs/rec.bin\u202e",
            "labA/inputs/end.txt",
            "labA/inputs/sub/rec.bin",  # same file name as labA/inputs/rec.bin
            ".ncaas/blueprint.json",
            "s3://other/labA/inputs/rec.bin",
        ]
    ),
    st.builds(lambda s: f"labA/inputs/{s}", odd_text),
    odd_text,
)
json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), odd_text),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(odd_text, inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["run", "near", "near", "doc", "doc", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    doc: dict[str, object] = {}
    if kind == "run":
        doc["dataname"] = draw(st.lists(existing_data, min_size=1, max_size=3, unique=True))
    elif kind == "near":
        good = draw(st.lists(existing_data, max_size=2, unique=True))
        doc["dataname"] = [*good, draw(near_miss)]
    else:
        doc = draw(
            st.dictionaries(
                st.sampled_from(["dataname", "configname", "timestamp", "x"]), json_value
            )
        )
    if draw(st.booleans()):
        doc["configname"] = draw(st.one_of(st.just(CONFIG), near_miss))
    if draw(st.booleans()):
        doc["timestamp"] = draw(st.one_of(st.from_regex(TIMESTAMP, fullmatch=True), odd_text))
    raw = json.dumps(doc, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    return (b"\xef\xbb\xbf" + raw) if draw(st.integers(0, 9)) == 0 else raw


submission_id = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_characters="/"), min_size=1, max_size=12),
    st.sampled_from(["a b", "a+b", "%41", "ü", "x" * 40]),
)
case = st.tuples(st.sampled_from(["labA"] * 8 + ["labB", "labZ"]), submission_id, bodies())


def expected_datasets(raw: bytes, group: str, existing: frozenset[str]) -> set[str] | None:
    """The dataset names a correct job runs, or None where a rejection is the right answer."""
    try:
        sub = parse_submission(raw, group)
    except InvalidSubmission:
        return None
    keys = {*sub.datanames, *([sub.configname] if sub.configname else [])}
    if group not in GROUPS or not keys <= existing:
        return None
    return set(sub.datasets)


@settings(
    max_examples=1,  # one batch of CASES submissions, written at once
    phases=[Phase.generate],  # a failure names its submission; shrinking would rerun the batch
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(st.lists(case, min_size=CASES, max_size=CASES))
def test_fuzzed_submissions_get_an_answer_and_write_only_in_their_group(
    stage: Stage, storage: Storage, settings: Settings, cases: list[tuple[str, str, bytes]]
) -> None:
    lab = stage.lab
    before = {o.key for o in storage.list_objects(lab.bucket, "")}
    written: list[tuple[Submitted, str, bytes]] = []
    for group, ident, raw in cases:
        key = f"{group}/submissions/{ident}-{secrets.token_hex(2)}_submit.json"
        written.append((Submitted(key, storage.put_bytes(lab.bucket, key, raw)), group, raw))

    jobs: dict[str, tuple[str, str]] = {}  # submission key -> (group, job)
    for submitted, group, raw in written:
        job = lab.wait_job(submitted, timeout=120)
        status = lab.wait_end(job, timeout=240, group=group)
        jobs[submitted.key] = (group, job)
        paths = lab.paths(job, group)
        expected = expected_datasets(raw, group, stage.existing)
        note = f"{submitted.key!r} {raw[:200]!r}: {status.state} {status.reason}"
        assert (status.group, status.submission) == (group, submitted.key), note
        if expected is None:
            assert status.state == State.REJECTED, note
            assert status.reason and "\n" not in status.reason, note
            assert f"REASON: {status.reason}" in lab.text(paths.certificate), note
            ran = storage.list_objects(lab.bucket, f"{paths.root}process_results/")
            assert [o.key for o in ran] == [paths.end], note
        else:
            assert status.state == State.SUCCEEDED, note
            assert set(status.datasets) == expected, note
            for name in expected:
                assert storage.head(lab.bucket, paths.outputs(name) + "facts.json"), note

    after = {o.key for o in storage.list_objects(lab.bucket, "")}
    allowed_roots = [f"{g}/results/{j}/" for g, j in jobs.values()]
    # Beside each submission, its pointer naming that job (and nothing else in the prefix).
    for key, (_, job) in jobs.items():
        assert pointed_job(storage.get_json(lab.bucket, submission_pointer_key(key))[0], key) == job
    pointers = {submission_pointer_key(key) for key in jobs}
    strays = [
        key
        for key in after - before
        if key not in jobs
        and key not in pointers
        and not key.startswith(".ncaas/")
        and not any(key.startswith(root) for root in allowed_roots)
    ]
    assert strays == [], f"objects written outside the submitting group's job folders: {strays}"
    assert before <= after, f"objects lost: {before - after}"

    # Still alive, still serving.
    assert PidFile(settings.state_dir, "dispatcher").read().running
    status = lab.run(dataname=f"labA/inputs/{ODD_NAMES[0]}", configname=CONFIG)
    assert status.state == State.SUCCEEDED, status.reason
