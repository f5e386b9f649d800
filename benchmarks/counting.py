"""A Storage whose S3 requests are counted: the benchmarks report requests per operation."""

from __future__ import annotations

import threading
from typing import Any

from ncaas_dev.aws import s3_client
from ncaas_dev.settings import Settings
from ncaas_dev.storage import Storage


class Counted:
    """A Storage whose S3 client counts the requests it sends."""

    def __init__(self, settings: Settings) -> None:
        client = s3_client(settings)
        self.count = 0
        self._lock = threading.Lock()
        client.meta.events.register("before-send.s3.*", self._one)
        self.storage = Storage(client, settings.endpoint_url)

    def _one(self, **_: Any) -> None:
        with self._lock:
            self.count += 1

    def take(self) -> int:
        with self._lock:
            n, self.count = self.count, 0
        return n
