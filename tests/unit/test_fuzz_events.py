"""Fuzzed S3 event messages: whatever arrives on the queue, parsing never raises."""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import quote, quote_plus

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ncaas_dev.events import ObjectCreated, records_from_s3_event, records_from_sqs_body

SCALE = float(os.environ.get("NCAAS_FUZZ_SCALE", "1"))
FUZZ = settings(
    max_examples=max(1, int(500 * SCALE)),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
text = st.text(st.characters(codec=None, categories=None), max_size=16)
json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), text),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)),
    max_leaves=12,
)


@st.composite
def events(draw: st.DrawFn) -> Any:
    """S3-shaped events whose every field may be missing, of the wrong type or hostile."""

    def maybe(value: st.SearchStrategy[Any]) -> Any:
        return draw(st.one_of(value, json_value))

    obj = {
        "key": maybe(text),
        "eTag": maybe(text),
        "size": maybe(st.integers(-1, 2**70)),
    }
    record = {
        "eventName": maybe(st.sampled_from(["ObjectCreated:Put", "ObjectRemoved:Delete"])),
        "s3": maybe(st.just({"bucket": {"name": maybe(text)}, "object": obj})),
    }
    return {"Records": maybe(st.lists(st.one_of(st.just(record), json_value), max_size=3))}


def assert_well_formed(records: list[ObjectCreated]) -> None:
    for r in records:
        assert isinstance(r.bucket, str) and isinstance(r.key, str)
        assert r.etag is None or (isinstance(r.etag, str) and r.etag)
        assert r.size is None or (isinstance(r.size, int) and not isinstance(r.size, bool))


@FUZZ
@given(st.one_of(events(), json_value))
def test_any_event_document_parses_without_raising(event: Any) -> None:
    assert_well_formed(records_from_s3_event(event))


@FUZZ
@given(st.one_of(text, st.builds(json.dumps, events()), st.binary().map(lambda b: b.hex())))
@example("[" * 100_000)
@example('{"Records": ' + "9" * 5000 + "}")
@example('{"Records": [' + "[" * 5000 + "]" * 5000 + "]}")
@example("\ud800")
def test_any_queue_message_parses_without_raising(body: str) -> None:
    assert_well_formed(records_from_sqs_body(body))


@FUZZ
@given(st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40))
def test_keys_survive_both_encodings_s3_uses(key: str) -> None:
    # AWS encodes a space as '+', LocalStack as %20; either way the key comes back whole.
    for encoded in (quote_plus(key, safe="/"), quote(key, safe="/")):
        event = {
            "Records": [
                {
                    "eventName": "ObjectCreated:Put",
                    "s3": {"bucket": {"name": "b"}, "object": {"key": encoded, "eTag": '"e"'}},
                }
            ]
        }
        (record,) = records_from_s3_event(event)
        assert record == ObjectCreated("b", key, "e", None)
