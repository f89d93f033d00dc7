"""One contract, every sink: JSON Lines, SQLite, PostgreSQL, stdout."""

from __future__ import annotations

import contextlib
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from kaitiaki.audit import Query
from kaitiaki.audit.chain import ChainHead, link
from kaitiaki.audit.events import Record
from kaitiaki.audit.sinks import AuditSink, JsonLinesSink, open_sink
from kaitiaki.errors import AuditSinkError, ConfigError
from tests.audit.conftest import request_event, settings_for

Sink = tuple[AuditSink, Callable[[], list[Record]]]


def _chained(keys: object, count: int, start: int = 0) -> list[Record]:
    records = [request_event(n) for n in range(start, start + count)]
    linked, _ = link(records, ChainHead(), keys.signer)  # type: ignore[attr-defined]
    return linked


def test_sink_appends_records_exactly_in_order(any_sink: Sink, keys: object) -> None:
    sink, read_back = any_sink
    records = _chained(keys, 5)

    sink.append(records[:2])
    sink.append(records[2:])

    assert read_back() == records


def test_sink_keeps_none_floats_and_escaped_text(any_sink: Sink, keys: object) -> None:
    sink, read_back = any_sink
    record = request_event(1, client_id="evil\r\nFAKE LINE\x1b[2J", latency_ms=0.1)
    record.update(seq=1, prev_hash="0" * 64, hash="x")

    sink.append([record])

    (stored,) = read_back()
    assert stored == record
    assert "\n" not in str(stored["client_id"]) and "\x1b" not in str(
        stored["client_id"]
    )
    assert stored["refusal_code"] is None and stored["latency_ms"] == 0.1


def test_sink_concurrent_appends_lose_nothing(any_sink: Sink, keys: object) -> None:
    sink, read_back = any_sink
    batches = [_chained(keys, 5, start=10 * n) for n in range(4)]
    for number, batch in enumerate(batches):
        for record in batch:
            record["instance"] = f"gw-{number}"

    threads = [threading.Thread(target=sink.append, args=(b,)) for b in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    stored = read_back()
    assert len(stored) == 20
    for batch in batches:
        instance = batch[0]["instance"]
        assert [r for r in stored if r["instance"] == instance] == batch


def test_sink_head_is_the_instance_latest(
    any_sink: Sink, keys: object, sink_kind: str
) -> None:
    sink, _ = any_sink
    records = _chained(keys, 3)
    other = request_event(99, instance="gw-b")
    other.update(seq=1, prev_hash="0" * 64, hash="y")

    sink.append([*records, other])

    expected = None if sink_kind == "stdout" else records[-1]
    assert sink.head("gw-a") == expected
    assert sink.head("gw-unknown") is None


def test_sink_search_filters_and_limits(
    any_sink: Sink, keys: object, sink_kind: str
) -> None:
    sink, _ = any_sink
    records = _chained(keys, 6)
    records[4]["client_id"], records[4]["outcome"] = "other", "refused"
    for record in records:
        record["hash"] = str(record["hash"])
    sink.append(records)
    if sink_kind == "stdout":
        with pytest.raises(ConfigError):
            sink.search(Query(), 10)
        return

    assert sink.search(Query(client_id="other"), 10) == [records[4]]
    assert sink.search(Query(outcome="refused"), 10) == [records[4]]
    assert sink.search(Query(correlation_id="corr-2"), 10) == [records[2]]
    window = Query(since=str(records[1]["time"]), until=str(records[3]["time"]))
    assert sink.search(window, 10) == records[1:3]
    assert sink.search(Query(), 2) == records[-2:]


@pytest.mark.parametrize("kind", ["jsonl", "sqlite"])
def test_sink_files_are_owner_only(kind: str, tmp_path: Path) -> None:
    settings = settings_for(kind, tmp_path)
    open_sink(settings).close()

    mode = stat.S_IMODE(Path(settings.path).stat().st_mode)
    assert mode == 0o600
    assert stat.S_IMODE(Path(settings.path).parent.stat().st_mode) & 0o077 in (0, 0o055)


def test_jsonl_rotates_by_size_and_scans_oldest_first(
    tmp_path: Path, keys: object
) -> None:
    path = tmp_path / "a.jsonl"
    sink = JsonLinesSink(path, rotate_bytes=4096, rotate_keep=0)
    records = _chained(keys, 30)
    for record in records:
        sink.append([record])

    assert len(list(tmp_path.glob("a.jsonl.*"))) >= 2
    assert [record for _, record in sink.scan()] == records
    assert sink.head("gw-a") == records[-1]
    sink.close()


def test_jsonl_keeps_only_rotate_keep_files(tmp_path: Path, keys: object) -> None:
    path = tmp_path / "a.jsonl"
    sink = JsonLinesSink(path, rotate_bytes=4096, rotate_keep=1)
    for record in _chained(keys, 40):
        sink.append([record])
    sink.close()

    assert len(list(tmp_path.glob("a.jsonl.*"))) == 1


def test_jsonl_drops_a_torn_final_line_on_open(tmp_path: Path, keys: object) -> None:
    path = tmp_path / "a.jsonl"
    records = _chained(keys, 2)
    sink = JsonLinesSink(path, rotate_bytes=1 << 20, rotate_keep=0)
    sink.append(records[:1])
    sink.close()
    with path.open("a") as handle:
        handle.write('{"event_type":"req')

    sink = JsonLinesSink(path, rotate_bytes=1 << 20, rotate_keep=0)
    sink.append(records[1:])

    assert [record for _, record in sink.scan()] == records
    sink.close()


def test_sink_refusing_a_value_stays_usable(any_sink: Sink, keys: object) -> None:
    # A value no UTF-8 encoder can write (a lone surrogate that bypassed
    # escaping): the sink refuses that batch or stores it escaped, and the
    # next batch is stored either way (SQLite once kept its transaction open).
    sink, read_back = any_sink
    bad, good = _chained(keys, 2)
    bad["client_id"] = "svc\ud800"
    with contextlib.suppress(AuditSinkError):
        sink.append([bad])
    sink.append([good])
    assert read_back()[-1] == good


def test_sink_appends_a_large_batch_whole_and_in_order(
    any_sink: Sink, keys: object
) -> None:
    # 1,000 records: several multi-row statements of every size in SQLite.
    sink, read_back = any_sink
    records = _chained(keys, 1000)
    sink.append(records[:997])
    sink.append(records[997:])
    assert read_back() == records
