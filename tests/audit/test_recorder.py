"""The recorder: strict and batched durability, failure and recovery, checkpoints."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

from kaitiaki.audit import Recorder, SecurityEvent, load_audit_keys, verify_chains
from kaitiaki.audit.events import Record
from kaitiaki.audit.sinks import Query
from kaitiaki.errors import AuditSinkError
from tests.audit.conftest import request_event, settings_for


class FlakySink:
    """Keeps records in memory; fails while ``down`` is set."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.down = False
        self.batches = 0

    def append(self, records: Sequence[Record]) -> None:
        if self.down:
            raise AuditSinkError("down")
        self.batches += 1
        self.records.extend(records)

    def head(self, instance: str) -> Record | None:
        return None

    def scan(self) -> Any:
        return ((f"row {i + 1}", r) for i, r in enumerate(self.records))

    def search(self, query: Query, limit: int) -> list[Record]:
        return [r for r in self.records if query.matches(r)][-limit:]

    def close(self) -> None:
        return None


def _recorder(tmp_path: Path, sink: FlakySink, **extra: Any) -> Recorder:
    settings = settings_for("sqlite", tmp_path, **extra)
    return Recorder(settings, "gw-a", sink, load_audit_keys(settings))


def _keys(recorder: Recorder) -> dict[str, Any]:
    signer = recorder.keys.signer
    return {signer.key_id: signer.public_key()}


def test_strict_commits_before_returning(tmp_path: Path) -> None:
    sink = FlakySink()
    recorder = _recorder(tmp_path, sink)

    assert anyio.run(recorder.record, request_event(1))

    assert [r["correlation_id"] for r in sink.records] == ["corr-1"]
    assert sink.records[0]["seq"] == 1


def test_strict_says_false_while_the_sink_is_down_and_recovers(tmp_path: Path) -> None:
    sink = FlakySink()
    health: list[bool] = []
    recorder = _recorder(tmp_path, sink)
    recorder._on_health = health.append

    sink.down = True
    assert not anyio.run(recorder.record, request_event(1))
    sink.down = False
    assert anyio.run(recorder.record, request_event(2))

    assert health == [False, True]
    kinds = [r["action"] or r["correlation_id"] for r in sink.records]
    assert kinds == ["corr-2", "sink_degraded", "sink_recovered"]
    (report,) = verify_chains(recorder.sink.scan(), _keys(recorder))
    assert report.ok


def test_batched_commits_in_batches_within_the_flush_interval(tmp_path: Path) -> None:
    sink = FlakySink()
    recorder = _recorder(
        tmp_path, sink, durability="batched", flush_interval_seconds=0.05
    )

    async def burst() -> list[bool]:
        taken = [await recorder.record(request_event(n)) for n in range(50)]
        with anyio.fail_after(5):
            while len(sink.records) < 50:
                await anyio.sleep(0.01)
        return taken

    assert all(anyio.run(burst))
    assert sink.batches < 50
    recorder.close()
    (report,) = verify_chains(sink.scan(), _keys(recorder))
    assert report.ok and report.unsigned_tail == 0


def test_batched_refuses_when_the_queue_is_full(tmp_path: Path) -> None:
    sink = FlakySink()
    recorder = _recorder(
        tmp_path, sink, durability="batched", queue_size=3, flush_interval_seconds=5
    )

    async def flood() -> list[bool]:
        return [await recorder.record(request_event(n)) for n in range(5)]

    assert anyio.run(flood) == [True, True, True, False, False]
    recorder.close()
    assert len([r for r in sink.records if r["event_type"] == "request"]) == 3


def test_batched_keeps_a_failed_batch_and_refuses_until_it_is_written(
    tmp_path: Path,
) -> None:
    sink = FlakySink()
    recorder = _recorder(
        tmp_path, sink, durability="batched", flush_interval_seconds=0.02
    )
    sink.down = True

    async def scenario() -> bool:
        await recorder.record(request_event(1))
        with anyio.fail_after(5):
            while recorder.healthy:
                await anyio.sleep(0.01)
        refused = not await recorder.record(request_event(2))
        sink.down = False
        with anyio.fail_after(5):
            while not recorder.healthy:
                await anyio.sleep(0.01)
        return refused

    assert anyio.run(scenario)
    recorder.close()
    ids = [r["correlation_id"] for r in sink.records if r["event_type"] == "request"]
    assert ids == ["corr-1"]


def test_checkpoint_every_n_events(tmp_path: Path) -> None:
    sink = FlakySink()
    recorder = _recorder(tmp_path, sink, checkpoint_every_events=3)

    async def write() -> None:
        for number in range(7):
            await recorder.record(request_event(number))

    anyio.run(write)

    types = [r["event_type"][0] for r in sink.records]  # type: ignore[index]
    assert "".join(types) == "rrrcrrrcr"


def test_checkpoint_after_t_seconds(tmp_path: Path) -> None:
    sink = FlakySink()
    now = [1000.0]
    settings = settings_for("sqlite", tmp_path, checkpoint_every_seconds=10)
    recorder = Recorder(
        settings, "gw-a", sink, load_audit_keys(settings), clock=lambda: now[0]
    )

    anyio.run(recorder.record, request_event(1))
    now[0] += 11
    anyio.run(recorder.record, request_event(2))

    assert [r["event_type"] for r in sink.records] == [
        "request",
        "request",
        "checkpoint",
    ]


def test_security_event_is_chained_with_requests(tmp_path: Path) -> None:
    sink = FlakySink()
    recorder = _recorder(tmp_path, sink)

    recorder.security_event("jwks_fetch_failed", outcome="failure", detail="timeout")
    anyio.run(recorder.record, request_event(1))

    first = sink.records[0]
    assert (first["event_type"], first["action"], first["outcome"]) == (
        "security",
        "jwks_fetch_failed",
        "failure",
    )
    assert sink.records[1]["prev_hash"] == first["hash"]


def test_security_event_kind_is_allow_listed() -> None:
    with pytest.raises(ValueError, match="unknown security event"):
        SecurityEvent(time="t", instance="i", action="token_dump")
    with pytest.raises(TypeError):
        unknown: dict[str, str] = {"token": "x"}
        SecurityEvent(time="t", instance="i", action="admin_action", **unknown)
