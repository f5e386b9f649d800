"""The admissions of one batch find their input files with one listing of the folder, answer
exactly as a HEAD would (missing files included), and never use a listing made before their
batch arrived. In moto's in-process S3."""

from __future__ import annotations

import time

from moto_world import BUCKET, aws, client  # noqa: F401 (aws: a fixture)
from test_batch_records import admit_together, storage  # noqa: F401 (a fixture)
from test_submission_pointer import GROUP, Counted, submit

from ncaas_dev.dispatch.admission import Admission
from ncaas_dev.dispatch.inputs import BatchInputs
from ncaas_dev.storage import ObjectInfo, Storage

INPUTS = f"{GROUP}/inputs/"


def test_a_batch_lists_its_input_folder_once_instead_of_a_head_per_submission(
    storage: Storage,  # noqa: F811 (the fixture)
) -> None:
    admitted, calls = admit_together(storage, Admission(storage, "docker", "test:1"), 6)
    ops = [op for op, _ in calls]
    assert {a.outcome.action for a in admitted} == {"started"}
    assert ops.count("HeadObject") == 0 and ops.count("ListObjectsV2") == 1


def test_the_listing_answers_as_a_head_would(storage: Storage) -> None:  # noqa: F811
    for name in ("a.bin", "c.bin", "sub/d.bin"):
        storage.put_bytes(BUCKET, INPUTS + name, name.encode())
    inputs = BatchInputs(storage)
    counted = Counted(storage)
    received = time.monotonic()
    keys = (INPUTS + "a.bin", INPUTS + "b.bin", INPUTS + "c.bin", INPUTS + "sub/d.bin")
    listed = [inputs.head(BUCKET, key, received) for key in keys]
    # one listing from a.bin on (b.bin missing inside it); a sub-folder's file with a HEAD
    assert [op for op, _ in counted.take()] == ["ListObjectsV2", "HeadObject"]
    for key, info in zip(keys, listed, strict=True):
        headed = storage.head(BUCKET, key)
        assert (info and (info.etag, info.size)) == (headed and (headed.etag, headed.size))
    assert listed[1] is None and listed[0] is not None
    # A file uploaded after the batch's listing belongs to a later batch, which lists again.
    storage.put_bytes(BUCKET, INPUTS + "e.bin", b"late")
    assert inputs.head(BUCKET, INPUTS + "e.bin", received) is None
    found = inputs.head(BUCKET, INPUTS + "e.bin", time.monotonic())
    assert found is not None and found.size == 4


def test_a_file_past_a_full_page_is_asked_with_a_head(storage: Storage) -> None:  # noqa: F811
    for i in range(5):
        storage.put_bytes(BUCKET, f"{INPUTS}f{i}.bin", b"x")

    class SmallPages(Storage):
        def list_page(
            self, bucket: str, prefix: str, start_after: str, max_keys: int = 2
        ) -> tuple[list[ObjectInfo], bool]:
            return super().list_page(bucket, prefix, start_after, max_keys=2)

    small = SmallPages(storage.s3, None)
    counted = Counted(small)
    inputs = BatchInputs(small)
    received = time.monotonic()
    assert inputs.head(BUCKET, f"{INPUTS}f0.bin", received) is not None  # lists f0, f1
    assert inputs.head(BUCKET, f"{INPUTS}f1.bin", received) is not None
    assert inputs.head(BUCKET, f"{INPUTS}f4.bin", received) is not None  # past the page
    assert inputs.head(BUCKET, f"{INPUTS}f9.bin", received) is None
    ops = [op for op, _ in counted.take()]
    assert ops == ["ListObjectsV2", "HeadObject", "HeadObject"]


def test_an_admission_alone_asks_with_a_head(storage: Storage) -> None:  # noqa: F811
    counted = Counted(storage)
    Admission(storage, "docker", "test:1").admit(submit(storage, "alone"))
    ops = [op for op, _ in counted.take()]
    assert "HeadObject" in ops and "ListObjectsV2" not in ops
