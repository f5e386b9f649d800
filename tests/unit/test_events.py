"""S3 event notifications as they arrive through SQS (or Lambda)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from ncaas_dev.events import ObjectCreated, records_from_s3_event, records_from_sqs_body

# The shape AWS documents for an S3 event notification (eventVersion 2.1).
PUT: dict[str, Any] = {
    "eventVersion": "2.1",
    "eventSource": "aws:s3",
    "awsRegion": "us-east-1",
    "eventTime": "2026-11-24T20:30:00.000Z",
    "eventName": "ObjectCreated:Put",
    "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
    "requestParameters": {"sourceIPAddress": "127.0.0.1"},
    "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8"},
    "s3": {
        "s3SchemaVersion": "1.0",
        "configurationId": "ncaas-submissions",
        "bucket": {
            "name": "spike-detect",
            "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
            "arn": "arn:aws:s3:::spike-detect",
        },
        "object": {
            "key": "labA/submissions/abc_submit.json",
            "size": 87,
            "eTag": "d41d8cd98f00b204e9800998ecf8427e",
            "sequencer": "0055AED6DCD90281E5",
        },
    },
}


def put(key: str, **obj: Any) -> dict[str, Any]:
    record = copy.deepcopy(PUT)
    record["s3"]["object"].update(key=key, **obj)
    return record


def test_object_created_put() -> None:
    (record,) = records_from_s3_event({"Records": [PUT]})
    assert record == ObjectCreated(
        bucket="spike-detect",
        key="labA/submissions/abc_submit.json",
        etag="d41d8cd98f00b204e9800998ecf8427e",
        size=87,
    )


def test_keys_are_url_decoded() -> None:
    # S3 encodes a space as '+', and a literal '+' as %2B.
    event = {"Records": [put("labA/submissions/my+run%2B2+%28final%29_submit.json")]}
    (record,) = records_from_s3_event(event)
    assert record.key == "labA/submissions/my run+2 (final)_submit.json"


def test_non_ascii_keys_are_decoded() -> None:
    (record,) = records_from_s3_event({"Records": [put("labA/submissions/r%C3%A9sum%C3%A9.json")]})
    assert record.key == "labA/submissions/résumé.json"


def test_quoted_etag_is_unquoted_and_missing_etag_is_none() -> None:
    (quoted,) = records_from_s3_event({"Records": [put("k", eTag='"abc"')]})
    assert quoted.etag == "abc"
    no_etag = put("k")
    del no_etag["s3"]["object"]["eTag"]
    del no_etag["s3"]["object"]["size"]
    (record,) = records_from_s3_event({"Records": [no_etag]})
    assert (record.etag, record.size) == (None, None)


@pytest.mark.parametrize(
    "name", ["ObjectCreated:Post", "ObjectCreated:Copy", "ObjectCreated:CompleteMultipartUpload"]
)
def test_every_object_created_kind_counts(name: str) -> None:
    record = put("labA/submissions/a_submit.json")
    record["eventName"] = name
    assert len(records_from_s3_event({"Records": [record]})) == 1


def test_other_event_kinds_are_skipped() -> None:
    removed = put("labA/submissions/a_submit.json")
    removed["eventName"] = "ObjectRemoved:Delete"
    restored = put("labA/submissions/b_submit.json")
    restored["eventName"] = "ObjectRestore:Completed"
    created = put("labA/submissions/c_submit.json")
    records = records_from_s3_event({"Records": [removed, restored, created]})
    assert [r.key for r in records] == ["labA/submissions/c_submit.json"]


def test_several_records_keep_their_order() -> None:
    event = {"Records": [put("labA/submissions/a_submit.json"), put("labB/submissions/b.json")]}
    assert [r.key for r in records_from_s3_event(event)] == [
        "labA/submissions/a_submit.json",
        "labB/submissions/b.json",
    ]


def test_s3_test_event_has_no_records() -> None:
    test_event = {
        "Service": "Amazon S3",
        "Event": "s3:TestEvent",
        "Time": "2026-11-24T20:30:00.000Z",
        "Bucket": "spike-detect",
        "RequestId": "5582815E1AEA5ADF",
        "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE",
    }
    assert records_from_s3_event(test_event) == []
    assert records_from_sqs_body(json.dumps(test_event)) == []


@pytest.mark.parametrize(
    "event",
    [
        None,
        "garbage",
        42,
        [PUT],
        {},
        {"Records": None},
        {"Records": "garbage"},
        {"Records": [None, 1, "x", []]},
        {"Records": [{"eventName": "ObjectCreated:Put"}]},
        {"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}}}]},
        {"Records": [{"eventName": "ObjectCreated:Put", "s3": {"object": {"key": "k"}}}]},
        {
            "Records": [
                {
                    "eventName": "ObjectCreated:Put",
                    "s3": {"bucket": {"name": "b"}, "object": {"key": 5}},
                }
            ]
        },
    ],
)
def test_garbage_gives_no_records(event: object) -> None:
    assert records_from_s3_event(event) == []


@pytest.mark.parametrize(
    "s3",
    [
        "garbage",
        {"bucket": "spike-detect", "object": {"key": "k"}},
        {"bucket": {"name": "b"}, "object": ["k"]},
    ],
)
def test_records_with_non_mapping_parts_are_skipped(s3: object) -> None:
    assert records_from_s3_event({"Records": [{"eventName": "ObjectCreated:Put", "s3": s3}]}) == []


def test_sqs_body_carries_the_s3_event() -> None:
    (record,) = records_from_sqs_body(json.dumps({"Records": [PUT]}))
    assert (record.bucket, record.key) == ("spike-detect", "labA/submissions/abc_submit.json")


@pytest.mark.parametrize("body", ["", "not json", "{", '{"Records": [', "null", "[1, 2]"])
def test_sqs_body_that_is_not_an_event(body: str) -> None:
    assert records_from_sqs_body(body) == []


def test_odd_field_types_are_dropped_not_trusted() -> None:
    (record,) = records_from_s3_event({"Records": [put("k", eTag={"x": 1}, size=True)]})
    assert (record.etag, record.size) == (None, None)
    assert records_from_s3_event({"Records": [{**PUT, "eventName": ["ObjectCreated:Put"]}]}) == []


@pytest.mark.parametrize("body", ["[" * 100_000, '{"Records": ' + "9" * 5000 + "}", "\ud800"])
def test_hostile_queue_bodies_give_no_records(body: str) -> None:
    assert records_from_sqs_body(body) == []
