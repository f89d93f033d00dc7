"""Group commit for ``strict`` durability: requests that arrive while a
commit is running wait for the next one, which carries all of them.

Each request still gets its answer only after its own record is durable, but
N concurrent requests cost one fsync or transaction, not N one after another.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from kaitiaki.audit.events import Record

__all__ = ["GroupCommit"]


class _Slot:
    __slots__ = ("done", "ok", "record")

    def __init__(self, record: Record) -> None:
        self.record, self.done, self.ok = record, False, False


class GroupCommit:
    """Leader and followers: the first waiting thread commits every pending
    record in one batch; the rest wait for their slot to be settled."""

    def __init__(self, commit: Callable[[list[Record]], bool]) -> None:
        self._commit = commit
        self._cond = threading.Condition()
        self._pending: list[_Slot] = []
        self._leading = False

    def submit(self, record: Record) -> bool:
        """Block until ``record`` is committed (True) or its batch failed."""
        slot = _Slot(record)
        with self._cond:
            self._pending.append(slot)
            while not slot.done:
                if self._leading:
                    self._cond.wait()
                else:
                    self._lead()
        return slot.ok

    def _lead(self) -> None:
        """Called holding the condition; commits without holding it."""
        self._leading = True
        batch, self._pending = self._pending, []
        ok = False
        self._cond.release()
        try:
            ok = self._commit([slot.record for slot in batch])
        finally:
            self._cond.acquire()
            for slot in batch:
                slot.done, slot.ok = True, ok
            self._leading = False
            self._cond.notify_all()
