"""The bucket layout: job folder keys, submission keys and claim keys."""

from __future__ import annotations

import pytest

from ncaas_dev.layout import (
    INTERNAL_PREFIX,
    JobPaths,
    claim_key,
    dataset_name,
    group_prefix,
    is_submission_key,
    not_a_submission,
    submissions_prefix,
)


def test_job_paths_follow_the_contract() -> None:
    paths = JobPaths("labA", "job_20261124T203000Z")
    root = "labA/results/job_20261124T203000Z/"
    assert paths.root == root
    assert paths.certificate == root + "logs/certificate.txt"
    assert paths.status == root + "logs/status.json"
    assert paths.log("rec1.bin") == root + "logs/rec1.bin.log"
    assert paths.outputs("rec1.bin") == root + "process_results/rec1.bin/"
    assert paths.end == root + "process_results/end.txt"


def test_group_prefixes() -> None:
    assert group_prefix("labA", "inputs") == "labA/inputs/"
    assert group_prefix("labA", "configs") == "labA/configs/"
    assert submissions_prefix("labA") == "labA/submissions/"


def test_dataset_name_is_the_last_part_of_the_key() -> None:
    assert dataset_name("labA/inputs/day1/rec1.bin") == "rec1.bin"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("labA/submissions/abc_submit.json", True),
        ("labA/submissions/submit.json", True),
        ("labA/submissions/abc.json", False),
        ("labA/submissions/abc_submit.json.bak", False),
        ("labA/submissions/deeper/abc_submit.json", False),
        ("labA/inputs/abc_submit.json", False),
        ("labA/results/job_1/abc_submit.json", False),
        ("submissions/abc_submit.json", False),
        ("", False),
        # No group can be named like these, so nothing under them is a submission.
        (".ncaas/submissions/abc_submit.json", False),
        ("../submissions/abc_submit.json", False),
        ("/submissions/abc_submit.json", False),
        ("lab\u00e9/submissions/abc_submit.json", False),
        ("labA\n/submissions/abc_submit.json", False),
    ],
)
def test_is_submission_key(key: str, expected: bool) -> None:
    assert is_submission_key(key) is expected


@pytest.mark.parametrize(
    ("key", "renamed"),
    [
        ("labA/submissions/bob7_Submit.json", "labA/submissions/bob7_submit.json"),
        ("labA/submissions/bob5.json", "labA/submissions/bob5_submit.json"),
        ("labA/submissions/notes.txt", "labA/submissions/notes.txt_submit.json"),
    ],
)
def test_a_misnamed_submission_says_the_name_to_use(key: str, renamed: str) -> None:
    reason = not_a_submission(key)
    assert reason is not None and reason.startswith(f"{key} is not a submission")
    assert reason.endswith(f"rename it {renamed}")


@pytest.mark.parametrize(
    "key",
    [
        "labA/submissions/a_submit.json",  # a submission
        "labA/submissions/a_cancel.json",  # a cancel request
        "labA/submissions/a_submit.json.job",  # the pointer to a submission's job
        "labA/submissions/",  # the folder's own placeholder
        "labA/inputs/bob5.json",  # not in submissions/
    ],
)
def test_what_belongs_in_submissions_is_not_flagged(key: str) -> None:
    assert not_a_submission(key) is None


def test_claim_key_is_stable_per_key_and_etag() -> None:
    key = "labA/submissions/abc_submit.json"
    first = claim_key(key, "9b2cf535f27731c974343645a3985328")
    assert first == claim_key(key, "9b2cf535f27731c974343645a3985328")
    assert first.startswith(f"{INTERNAL_PREFIX}/claims/") and first.endswith(".json")
    assert not first.startswith("labA/")


def test_claim_key_ignores_quotes_around_the_etag() -> None:
    key = "labA/submissions/abc_submit.json"
    assert claim_key(key, '"9b2cf535"') == claim_key(key, "9b2cf535")


def test_claim_key_differs_by_key_or_etag() -> None:
    key = "labA/submissions/abc_submit.json"
    claims = {
        claim_key(key, "e1"),
        claim_key(key, "e2"),
        claim_key("labA/submissions/abd_submit.json", "e1"),
        claim_key("labB/submissions/abc_submit.json", "e1"),
    }
    assert len(claims) == 4


def test_claim_key_cannot_be_confused_by_concatenation() -> None:
    assert claim_key("ab", "c") != claim_key("a", "bc")
