"""Budget reservations of parallel admissions, written together (group commit).

Every admission of a group reserves in the group's one ledger object, with a conditional
write. Parallel admissions would each read it, and all but one would lose the race, back
off and read it again: a storm of 412s. Here, while one write for a ledger is in flight, the
reservations that arrive wait; the next write carries all of them, each judged in arrival
order against the ones before it. Other dispatchers are still kept honest by the ledger's
conditional write.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field

from ..budget import Budget, ReservationClash, ReservationRequest
from ..storage import Storage

LedgerId = tuple[str, str]  # bucket, group


@dataclass
class _Waiting:
    request: ReservationRequest
    done: threading.Event = field(default_factory=threading.Event)
    answer: str | BaseException | None = None


@dataclass
class ReservationBatcher:
    storage: Storage
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _queued: defaultdict[LedgerId, list[_Waiting]] = field(
        default_factory=lambda: defaultdict(list)
    )
    _writing: set[LedgerId] = field(default_factory=set)

    def reserve(self, bucket: str, group: str, request: ReservationRequest) -> str | None:
        """As ``Budget.reserve``: None if reserved, else the refusal; raises on a name clash."""
        mine = _Waiting(request)
        ledger = (bucket, group)
        with self._lock:
            self._queued[ledger].append(mine)
            lead = ledger not in self._writing
            if lead:
                self._writing.add(ledger)
        if lead:
            self._write_until_drained(ledger)
        mine.done.wait()
        if isinstance(mine.answer, BaseException):
            raise mine.answer
        return mine.answer

    def _write_until_drained(self, ledger: LedgerId) -> None:
        while True:
            with self._lock:
                batch = self._queued.pop(ledger, [])
                if not batch:
                    self._writing.discard(ledger)
                    return
            try:
                answers: list[str | BaseException | None] = list(
                    Budget(self.storage, ledger[0]).reserve_many(
                        ledger[1], [w.request for w in batch]
                    )
                )
            except Exception as e:  # each waiting admission reports the failure itself
                answers = [e] * len(batch)
            for waiting, answer in zip(batch, answers, strict=True):
                waiting.answer = answer
                waiting.done.set()


__all__ = ["ReservationBatcher", "ReservationClash"]
