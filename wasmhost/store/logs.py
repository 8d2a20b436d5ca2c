"""Recent invocation logs, shared by every worker process of one data directory.

The hot path only appends a record to a bounded deque (no lock, never blocks; a
full deque drops the record and counts it); a background thread writes batches
to `logs.sqlite3` every flush interval and keeps the newest `keep_per_function`
records per function.
A read first flushes this process's queue, so a caller sees its own calls at once
and other workers' calls within one flush interval.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("wasmhost.logstore")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS invocations (id INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT NOT NULL,"
    " function TEXT NOT NULL, version INTEGER NOT NULL, time REAL NOT NULL, status INTEGER NOT NULL,"
    " code TEXT, duration_ms REAL NOT NULL, tier TEXT NOT NULL, fuel INTEGER NOT NULL,"
    " logs TEXT NOT NULL, truncated INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS invocations_by_function ON invocations (function, id)",
    "CREATE INDEX IF NOT EXISTS invocations_by_request ON invocations (request_id)",
)


@dataclass(slots=True)  # not frozen: one is built per logged call, and frozen init is slow
class InvocationRecord:
    request_id: str
    function: str
    version: int
    time: float
    status: int
    code: str | None
    duration_ms: float
    tier: str
    fuel: int
    logs: list[str] = field(default_factory=list)
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class LogStore:
    def __init__(self, path: Path, keep_per_function: int = 200, flush_interval_s: float = 0.05,
                 max_pending: int = 10_000) -> None:
        self.path = Path(path)
        self.keep = keep_per_function
        self.dropped = 0
        self._pending: deque[InvocationRecord] = deque()
        self._max_pending = max_pending
        self._stopping = threading.Event()
        self._touched: set[str] = set()
        self._prune_at = 0.0
        self._interval = flush_interval_s
        self._lock = threading.Lock()  # one writer at a time in this process
        self._conn = self._connect()
        with self._lock:
            for statement in _SCHEMA:
                self._conn.execute(statement)
        self._thread = threading.Thread(target=self._run, name="wasmhost-logstore", daemon=True)
        self._thread.start()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # logs are best-effort: no fsync per batch
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    def add(self, record: InvocationRecord) -> None:
        if len(self._pending) >= self._max_pending:
            self.dropped += 1
            return
        self._pending.append(record)  # deque.append is atomic: no lock on the request path

    def _run(self) -> None:
        # Records stay pending until written, so a reader's flush() always sees them.
        while not self._stopping.wait(self._interval):
            if self._pending:
                self._write_pending()

    def _write_pending(self) -> None:
        # Drain and write under one lock: a reader's flush() then waits for a batch
        # in flight instead of reading the database before it is committed.
        with self._lock:
            batch: list[InvocationRecord] = []
            while True:
                try:
                    batch.append(self._pending.popleft())
                except IndexError:
                    break
            if not batch:
                return
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                # One JSON document for the whole batch, split into rows by SQLite itself: a
                # tenth of the Python of executemany (bench/design-figures.md: log-batch).
                rows = json.dumps([[r.request_id, r.function, r.version, r.time, r.status, r.code, r.duration_ms,
                                    r.tier, r.fuel, "\n".join(r.logs), int(r.truncated)] for r in batch])
                self._conn.execute(
                    "INSERT INTO invocations (request_id, function, version, time, status, code, duration_ms,"
                    " tier, fuel, logs, truncated) SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3,"
                    " value ->> 4, value ->> 5, value ->> 6, value ->> 7, value ->> 8, value ->> 9, value ->> 10"
                    " FROM json_each(?)", (rows,))
                self._touched.update(r.function for r in batch)
                now = time.monotonic()
                if now >= self._prune_at:  # trimming to `keep` rows per function: once a second is plenty
                    self._prune_at = now + 1.0
                    for function in self._touched:
                        self._conn.execute(
                            "DELETE FROM invocations WHERE function = ? AND id <= (SELECT id FROM invocations"
                            " WHERE function = ? ORDER BY id DESC LIMIT 1 OFFSET ?)", (function, function, self.keep))
                    self._touched.clear()
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                log.error("could not write %d invocation records: %s", len(batch), exc)
                try:
                    self._conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass

    def flush(self) -> None:
        self._write_pending()

    def recent(self, function: str, limit: int = 50, request_id: str | None = None) -> list[InvocationRecord]:
        """Newest first."""
        self.flush()
        sql = ("SELECT request_id, function, version, time, status, code, duration_ms, tier, fuel, logs, truncated"
               " FROM invocations WHERE function = ?")
        args: list[Any] = [function]
        if request_id:
            sql += " AND request_id = ?"
            args.append(request_id)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        return [InvocationRecord(*row[:9], logs=row[9].split("\n") if row[9] else [], truncated=bool(row[10]))
                for row in rows]

    def forget(self, function: str) -> None:
        """Drop a deleted function's records."""
        self.flush()
        with self._lock:
            self._conn.execute("DELETE FROM invocations WHERE function = ?", (function,))

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=2)
        self.flush()
        with self._lock:
            self._conn.close()
