"""Group commit: every caller waits for its own commit; concurrent callers
share commits; a failed commit fails exactly its batch."""

from __future__ import annotations

import threading
import time

import pytest

from kaitiaki.audit.events import Record
from kaitiaki.audit.group import GroupCommit
from tests.audit.conftest import request_event


class SlowStore:
    def __init__(self, fail_batch: int | None = None) -> None:
        self.batches: list[list[str]] = []
        self.fail_batch = fail_batch

    def commit(self, records: list[Record]) -> bool:
        time.sleep(0.02)  # a commit that takes a while, so callers pile up
        number = len(self.batches)
        self.batches.append([str(r["correlation_id"]) for r in records])
        return number != self.fail_batch


def _submit_all(group: GroupCommit, count: int) -> dict[str, bool]:
    results: dict[str, bool] = {}

    def worker(number: int) -> None:
        record = request_event(number)
        results[str(record["correlation_id"])] = group.submit(record)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    return results


def test_group_commit_shares_commits_and_answers_everyone() -> None:
    store = SlowStore()
    results = _submit_all(GroupCommit(store.commit), 30)

    assert len(results) == 30 and all(results.values())
    committed = [cid for batch in store.batches for cid in batch]
    assert sorted(committed) == sorted(results)
    assert len(store.batches) < 30


def test_group_commit_failure_fails_only_its_batch() -> None:
    store = SlowStore(fail_batch=0)
    results = _submit_all(GroupCommit(store.commit), 20)

    failed = {cid for cid, ok in results.items() if not ok}
    assert failed == set(store.batches[0])
    assert all(ok for cid, ok in results.items() if cid not in failed)


def test_group_commit_exception_releases_waiters() -> None:
    calls: list[int] = []

    def broken(records: list[Record]) -> bool:
        calls.append(len(records))
        if len(calls) == 1:
            raise RuntimeError("bug")
        return True

    group = GroupCommit(broken)
    with pytest.raises(RuntimeError):
        group.submit(request_event(1))
    assert group.submit(request_event(2))
