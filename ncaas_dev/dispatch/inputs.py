"""The input files one batch of submissions names, found with one listing per folder.

Admission checks that every file a submission names exists (and records its ETag). Alone, an
admission asks with one HEAD per file. The admissions of one batch (an SQS receive, a Lambda
invocation) usually name files in the same folder (``{group}/inputs/``), so the first of them
lists that folder from its own file on (one page, up to 1000 files) and the others find theirs
in that page: one request for the batch instead of one per submission. A page read after the
batch was received shows every file uploaded before its submission was written (S3's listings
are strongly consistent), so it answers as the HEAD would; a file outside the page's range is
asked with a HEAD, and a page is never used for a later batch.

Only ``inputs/`` and ``configs/`` are listed: what is elsewhere is asked with a HEAD as before,
so a file the dispatcher may list but not read is answered as it was.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass

from ..storage import ObjectInfo, Storage

LISTED_FOLDERS = ("inputs", "configs")


@dataclass(frozen=True)
class _Page:
    read_at: float  # time.monotonic() when it was listed
    first: str  # the page covers the folder's keys from ``first``...
    last: str | None  # ...up to ``last`` (None: to the folder's end)
    found: dict[str, ObjectInfo]

    def covers(self, key: str) -> bool:
        return key >= self.first and (self.last is None or key <= self.last)


class BatchInputs:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._pages: dict[tuple[str, str], _Page] = {}
        self._locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)
        self._guard = threading.Lock()

    def head(self, bucket: str, key: str, received: float | None = None) -> ObjectInfo | None:
        """The file ``key`` as S3 has it at or after ``received`` (when the event's batch
        arrived, ``time.monotonic()``; None: ask now), or None if there is no such file."""
        folder = key.rpartition("/")[0] + "/"
        parts = folder.split("/")
        if received is None or len(parts) != 3 or parts[1] not in LISTED_FOLDERS:
            return self.storage.head(bucket, key)
        with self._guard:
            lock = self._locks[(bucket, folder)]
        with lock:  # the batch's other admissions wait for this listing instead of asking
            page = self._pages.get((bucket, folder))
            if page is None or page.read_at < received:
                page = self._list(bucket, folder, key)
                self._pages[(bucket, folder)] = page
        if page.covers(key):
            return page.found.get(key)
        return self.storage.head(bucket, key)

    def _list(self, bucket: str, folder: str, key: str) -> _Page:
        read_at = time.monotonic()
        # Listed from just before ``key``: the page starts with it if it exists.
        objects, more = self.storage.list_page(bucket, folder, start_after=key[:-1])
        # Listed further than the page: it covers up to its last file (none: covers nothing).
        last = (objects[-1].key if objects else "") if more else None
        return _Page(read_at, key, last, {o.key: o for o in objects})
