"""The version of each shared record this process last wrote or read (a bounded LRU).

Records with many writers (a job's status.json, a group's budget ledger) are changed with
conditional writes. A writer first writes against the version it last saw and reads only on
a conflict: a writer that is alone on the record saves a round-trip per change. The
conditional write keeps it safe: a stale entry only costs the 412 and the read the change
would have made anyway.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any


class LastSeen:
    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[str, str], tuple[str, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, bucket: str, key: str) -> tuple[dict[str, Any], str] | None:
        """A fresh copy of the document (callers change it) and its ETag, if known."""
        with self._lock:
            entry = self._entries.get((bucket, key))
        return (json.loads(entry[0]), entry[1]) if entry else None

    def put(self, bucket: str, key: str, doc: dict[str, Any], etag: str) -> None:
        with self._lock:
            self._entries[(bucket, key)] = (json.dumps(doc), etag)
            self._entries.move_to_end((bucket, key))
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def forget(self, bucket: str, key: str) -> None:
        with self._lock:
            self._entries.pop((bucket, key), None)
