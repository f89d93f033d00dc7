"""The recorder: chains records, writes them through the sink with the
configured durability, and adds signed checkpoints.

``strict``: a request's record is committed before its reply is sent
(concurrent requests share one commit, see :mod:`kaitiaki.audit.group`).
``batched``: records go to a bounded queue that a writer thread commits every
``flush_interval_seconds``; a crash loses at most that window. Either way,
:meth:`Recorder.record` says False when the record could not be taken (sink
down, queue full), and the gateway refuses rather than serve unaudited.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from anyio import to_thread

from kaitiaki.audit.chain import ChainHead, link
from kaitiaki.audit.events import Record, SecurityEvent, blank_record
from kaitiaki.audit.group import GroupCommit
from kaitiaki.audit.keys import AuditKeys
from kaitiaki.audit.sinks import AuditSink, Query
from kaitiaki.errors import AuditSinkError, ConfigError
from kaitiaki.issuer.keys import write_json
from kaitiaki.settings import AuditSettings

__all__ = ["Recorder", "iso_time"]

logger = logging.getLogger("kaitiaki.audit.recorder")


def iso_time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="microseconds")


class Recorder:
    """One instance's chain over one sink; safe to call from any thread."""

    def __init__(
        self,
        settings: AuditSettings,
        instance: str,
        sink: AuditSink,
        keys: AuditKeys,
        *,
        clock: Callable[[], float] = time.time,
        on_health: Callable[[bool], None] | None = None,
    ) -> None:
        self.settings, self.instance, self.sink, self.keys = (
            settings,
            instance,
            sink,
            keys,
        )
        self._clock, self._on_health = clock, on_health
        self._lock = threading.Lock()
        self._group = GroupCommit(self._commit_logged)
        self._head = _head_of(sink.head(instance))
        self._since_checkpoint = 0
        self._last_checkpoint = clock()
        self.healthy = True
        self.failed_writes = 0
        self._failed_at: float | None = None
        self._overflowing = False
        self._queue: queue.Queue[Record] = queue.Queue(maxsize=settings.queue_size)
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None
        if settings.durability == "batched":
            self._writer = threading.Thread(
                target=self._write_batches, name="kaitiaki-audit-writer", daemon=True
            )
            self._writer.start()

    def last_detail(self, event_type: str, action: str | None = None) -> Record | None:
        """This instance's latest record of a kind (None if the sink cannot
        be read back, as stdout cannot)."""
        query = Query(event_type=event_type, instance=self.instance, action=action)
        try:
            found = self.sink.search(query, 1)
        except (AuditSinkError, ConfigError):
            return None
        return found[0] if found else None

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    @property
    def saturated(self) -> bool:
        """True while the batched queue is full (it cannot keep up)."""
        return self._writer is not None and self._queue.full()

    async def record(self, record: Record) -> bool:
        """Take one record; False when it cannot be recorded."""
        if self._writer is None:
            return await to_thread.run_sync(self._group.submit, record)
        if not self.healthy:
            return False
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            if not self._overflowing:
                self._overflowing = True
                logger.warning(
                    "audit queue full (%d records); refusing until it drains",
                    self.settings.queue_size,
                )
            return False
        return True

    def security_event(
        self,
        kind: str,
        *,
        outcome: str = "success",
        detail: str | None = None,
        client_id: str | None = None,
        subject: str | None = None,
        route: str | None = None,
        key_id: str | None = None,
    ) -> None:
        """Record a security event that is not a request (``SECURITY_KINDS``).

        Never raises for a sink failure: it is logged, and the next request's
        record fails the same way and is refused.
        """
        event = SecurityEvent(
            time=iso_time(self._clock()),
            instance=self.instance,
            action=kind,
            outcome="failure" if outcome == "failure" else "success",
            detail=detail,
            client_id=client_id,
            subject=subject,
            route=route,
            key_id=key_id,
        )
        if self._writer is None:
            self._commit_logged([event.to_record()])
            return
        try:
            self._queue.put_nowait(event.to_record())
        except queue.Full:
            logger.warning("audit queue full; security event %s not recorded", kind)

    def _checkpoint_due(self, now: float) -> bool:
        if self._since_checkpoint == 0:
            return False
        return (
            self._since_checkpoint >= self.settings.checkpoint_every_events
            or now - self._last_checkpoint >= self.settings.checkpoint_every_seconds
        )

    def _checkpoint(self, now: float) -> Record:
        record = blank_record()
        record.update(
            event_type="checkpoint", time=iso_time(now), instance=self.instance
        )
        return record

    def _commit(self, records: list[Record], *, force_checkpoint: bool = False) -> None:
        with self._lock:
            now = self._clock()
            count = self._since_checkpoint + len(records)
            sign = count > 0 and (
                force_checkpoint
                or count >= self.settings.checkpoint_every_events
                or now - self._last_checkpoint >= self.settings.checkpoint_every_seconds
            )
            batch = [*records, self._checkpoint(now)] if sign else list(records)
            linked, head = link(batch, self._head, self.keys.signer)
            self.sink.append(linked)
            self._head = head
            if sign:
                self._since_checkpoint, self._last_checkpoint = 0, now
                self._write_head_file(linked[-1])
            else:
                self._since_checkpoint = count

    def _write_head_file(self, checkpoint: Record) -> None:
        """The latest checkpoint, outside the sink too, so that records cut
        from the end of the store are noticed by ``audit verify``."""
        head = {name: checkpoint[name] for name in ("instance", "seq", "hash")}
        try:
            write_json(self.settings.head_path(self.instance), head)
        except ConfigError as exc:
            logger.warning("audit head file not written: %s", exc)

    def _commit_logged(self, records: list[Record], *, force: bool = False) -> bool:
        if not records and not force:
            return True
        try:
            self._commit(records, force_checkpoint=force)
        except AuditSinkError as exc:
            self.failed_writes += 1
            self._set_health(False, str(exc))
            return False
        self._set_health(True, "")
        return True

    def _set_health(self, healthy: bool, reason: str) -> None:
        if healthy == self.healthy:
            return
        self.healthy = healthy
        if self._on_health is not None:
            self._on_health(healthy)
        if not healthy:
            self._failed_at = self._clock()
            logger.error("audit sink failed (%s); refusing requests", reason)
            return
        logger.warning(
            "audit sink recovered after %d failed writes", self.failed_writes
        )
        # Written once the sink takes records again: when it failed, how often.
        since = iso_time(self._failed_at or self._clock())
        self.security_event("sink_degraded", outcome="failure", detail=f"since={since}")
        self.security_event(
            "sink_recovered", detail=f"failed_writes={self.failed_writes}"
        )

    def _drain(self, into: list[Record]) -> None:
        while True:
            try:
                into.append(self._queue.get_nowait())
            except queue.Empty:
                return

    def _write_batches(self) -> None:
        pending: list[Record] = []
        interval = self.settings.flush_interval_seconds
        while not self._stop.wait(interval):
            self._drain(pending)
            if pending and self._commit_logged(pending):
                pending, self._overflowing = [], False
            elif not pending and self._checkpoint_due(self._clock()):
                self._commit_logged([], force=True)
        self._drain(pending)
        self._commit_logged(pending, force=True)

    def flush(self) -> None:
        """Commit everything queued and sign the head (shutdown, tests)."""
        if self._writer is not None:
            self._stop.set()
            self._writer.join(timeout=30)
            self._writer = None
            return
        self._commit_logged([], force=True)

    def close(self) -> None:
        self.flush()
        self.sink.close()


def _head_of(record: Record | None) -> ChainHead:
    if record is None or record["seq"] is None:
        return ChainHead()
    return ChainHead(int(record["seq"] or 0), str(record["hash"]))
