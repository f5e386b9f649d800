"""Make LocalStack's S3 keep an object whole when a write to its key fails, as S3 does.

LocalStack 4.13 writes an object's new body into the very file that holds its current one,
and when the write fails (a body cut short by a killed writer, a checksum that does not match)
it removes that file. The object then still claims its old length but has no bytes, and every
read of it fails ("IncompleteRead(0 bytes read, N more expected)"). A runner SIGKILLed while
it wrote its job's status.json left one such object, and no dispatcher could read that job
again. S3 replaces an object only when the new one is complete.

Here a write goes to a new file, registered under the key at once so that readers who come
during the write wait for it, as they did before; if the write fails, the new file is given
the earlier bytes back. Writes to one key still take turns, as before: each waits for the one
in progress. ncaas-dev's LocalStack boot code (local/stack.py) runs this file before
LocalStack starts.
"""

from __future__ import annotations

import shutil
import threading
from typing import Any

from localstack.services.s3.storage import ephemeral
from localstack.services.s3.storage.ephemeral import (
    EphemeralS3ObjectStore,
    EphemeralS3StoredObject,
    LockedSpooledTemporaryFile,
)

_pending: set[int] = set()  # id()s of the S3Objects being written: remove() leaves them alone
_registry = threading.Lock()  # who looks up, and replaces, a key's file


class _Write(EphemeralS3StoredObject):
    """A write to a new file that, if it fails, takes the key's earlier bytes back."""

    def __init__(self, s3_object: Any, file: LockedSpooledTemporaryFile, earlier: Any) -> None:
        super().__init__(s3_object=s3_object, file=file, mode="w")
        self._earlier = earlier  # (file, its write lock held by us) or None
        _pending.add(id(s3_object))

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        try:
            if exc_type is not None:
                self._give_back()
        finally:
            _pending.discard(id(self.s3_object))
            if self._earlier is not None:
                self._earlier[1].release()
            super().__exit__(exc_type, *rest)

    def _give_back(self) -> None:
        with self.file.position_lock:
            self.file.seek(0)
            self.file.truncate()
            if self._earlier is not None:
                earlier = self._earlier[0]
                with earlier.position_lock:
                    earlier.seek(0)
                    shutil.copyfileobj(earlier, self.file)
                self.file.internal_last_modified = earlier.internal_last_modified


def _open(
    self: EphemeralS3ObjectStore, bucket: str, s3_object: Any, mode: str = "r"
) -> EphemeralS3StoredObject:
    if mode != "w":
        return _original_open(self, bucket, s3_object, mode)
    key = self._key_from_s3_object(s3_object)
    keys = self._filesystem[bucket]["keys"]
    while True:
        with _registry:
            earlier_file = keys.get(key)
        earlier = None
        if earlier_file is not None:
            lock = earlier_file.readwrite_lock.gen_wlock()
            lock.acquire()  # the write in progress, and readers of the current bytes, finish
            earlier = (earlier_file, lock)
        with _registry:
            if keys.get(key) is earlier_file:
                file = LockedSpooledTemporaryFile(
                    dir=f"{self.root_directory}/{bucket}", max_size=ephemeral.S3_MAX_FILE_SIZE_BYTES
                )
                stored = _Write(s3_object, file, earlier)  # holds the new file's write lock
                keys[key] = file
                return stored
        if earlier is not None:  # another write took the key meanwhile: wait for that one
            earlier[1].release()


def _remove(self: EphemeralS3ObjectStore, bucket: str, s3_object: Any) -> None:
    objects = s3_object if isinstance(s3_object, list) else [s3_object]
    kept = [o for o in objects if id(o) not in _pending]  # a failed write: _Write gives back
    if kept:
        _original_remove(self, bucket, kept)


_original_open = EphemeralS3ObjectStore.open
_original_remove = EphemeralS3ObjectStore.remove
EphemeralS3ObjectStore.open = _open
EphemeralS3ObjectStore.remove = _remove
