"""The analysis records (``.ncaas/blueprint.json``) one batch of events shares.

Every admission needs its bucket's record, which provisioning rewrites whenever the analysis
changes (``run`` does it just before writing a submission). A record read after an event was
received is at least as new as the record its submitter provisioned, so the admissions of one
batch (an SQS receive, a Lambda invocation) share one read per bucket; an event received later
reads again. Nothing is kept past that, so no dispatcher acts on an older blueprint than it
would have read itself.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict

from ..analysis import AnalysisRecord, load_record
from ..storage import Storage


class BatchRecords:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._read: dict[str, tuple[float, AnalysisRecord | None]] = {}
        self._locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
        self._guard = threading.Lock()

    def get(self, bucket: str, received: float | None = None) -> AnalysisRecord | None:
        """The bucket's record as read at or after ``received`` (``time.monotonic()`` when
        the event arrived; None: read it now)."""
        with self._guard:
            lock = self._locks[bucket]
        with lock:  # the batch's other admissions wait for this read instead of repeating it
            known = self._read.get(bucket)
            if received is not None and known is not None and known[0] >= received:
                return known[1]
            read_at = time.monotonic()
            record = load_record(self.storage, bucket)
            self._read[bucket] = (read_at, record)
            return record
