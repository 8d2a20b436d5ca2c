"""The invocation log store: ordering, lookup by request id, trimming, sharing between processes."""

from __future__ import annotations

import time
from pathlib import Path

from wasmhost.store.logs import InvocationRecord, LogStore


def record(i: int, function: str = "fn", logs: list[str] | None = None) -> InvocationRecord:
    return InvocationRecord(f"rid-{i}", function, 1, time.time(), 200 if i % 2 else 502,
                            None if i % 2 else "trap", 0.5, "memory", 40 + i,
                            logs if logs is not None else [f"line {i}", "second, with \"quotes\" and ünïcode"],
                            truncated=i == 3)


def test_newest_first_lookup_and_round_trip(tmp_path: Path) -> None:
    store = LogStore(tmp_path / "logs.sqlite3", flush_interval_s=60)
    try:
        for i in range(10):
            store.add(record(i))
        recent = store.recent("fn", limit=3)
        assert [r.request_id for r in recent] == ["rid-9", "rid-8", "rid-7"]
        [found] = store.recent("fn", request_id="rid-3")
        assert found.logs == ["line 3", "second, with \"quotes\" and ünïcode"] and found.truncated
        assert found.code is None and found.status == 200 and found.fuel == 43
        [failed] = store.recent("fn", request_id="rid-4")
        assert failed.code == "trap" and failed.status == 502 and not failed.truncated
        assert store.recent("fn", request_id="nope") == []
        store.add(record(11, logs=[]))
        assert store.recent("fn", limit=1)[0].logs == []
    finally:
        store.close()


def test_trimmed_to_the_newest_per_function(tmp_path: Path) -> None:
    store = LogStore(tmp_path / "logs.sqlite3", keep_per_function=5, flush_interval_s=60)
    try:
        for i in range(20):
            store.add(record(i))
            store.add(record(i, function="other"))
        store.flush()
        store._prune_at = 0.0  # trimming runs at most once a second; make this batch trim
        store.add(record(20))
        store.flush()
        assert [r.request_id for r in store.recent("fn", limit=100)] == [f"rid-{i}" for i in range(20, 15, -1)]
        assert len(store.recent("other", limit=100)) == 5
        store.forget("other")
        assert store.recent("other") == []
    finally:
        store.close()


def test_another_store_on_the_same_file_sees_the_records(tmp_path: Path) -> None:
    writer = LogStore(tmp_path / "logs.sqlite3", flush_interval_s=0.01)
    reader = LogStore(tmp_path / "logs.sqlite3", flush_interval_s=60)
    try:
        writer.add(record(1))
        deadline = time.monotonic() + 10
        while not reader.recent("fn") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [r.request_id for r in reader.recent("fn")] == ["rid-1"]
    finally:
        writer.close()
        reader.close()


def test_a_full_queue_drops_and_counts(tmp_path: Path) -> None:
    store = LogStore(tmp_path / "logs.sqlite3", flush_interval_s=60, max_pending=3)
    try:
        for i in range(5):
            store.add(record(i))
        assert store.dropped == 2
        assert len(store.recent("fn", limit=10)) == 3
    finally:
        store.close()
