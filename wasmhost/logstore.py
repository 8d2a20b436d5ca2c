"""Recent invocation logs, shared by every worker process of one data directory.

The hot path only puts a record on a bounded queue (never blocks; a full queue
drops the record and counts it); a background thread writes batches to
`logs.sqlite3` and keeps the newest `keep_per_function` records per function.
A read first flushes this process's queue, so a caller sees its own calls at once
and other workers' calls within one flush interval.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
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


@dataclass(frozen=True, slots=True)
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
        self._queue: queue.Queue[InvocationRecord | None] = queue.Queue(maxsize=max_pending)
        self._wake = threading.Event()
        self._stopping = False
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
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1
            return
        self._wake.set()

    def _run(self) -> None:
        # Records stay in the queue until written, so a reader's flush() always sees them.
        while not self._stopping:
            self._wake.wait()
            self._wake.clear()
            time.sleep(self._interval)  # let a batch gather
            self._write_pending()

    def _write_pending(self) -> None:
        # Drain and write under one lock: a reader's flush() then waits for a batch
        # in flight instead of reading the database before it is committed.
        with self._lock:
            batch: list[InvocationRecord] = []
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    batch.append(item)
            if not batch:
                return
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.executemany(
                    "INSERT INTO invocations (request_id, function, version, time, status, code, duration_ms,"
                    " tier, fuel, logs, truncated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(r.request_id, r.function, r.version, r.time, r.status, r.code, r.duration_ms, r.tier,
                      r.fuel, json.dumps(r.logs), int(r.truncated)) for r in batch])
                for function in {r.function for r in batch}:
                    self._conn.execute(
                        "DELETE FROM invocations WHERE function = ? AND id <= (SELECT id FROM invocations"
                        " WHERE function = ? ORDER BY id DESC LIMIT 1 OFFSET ?)", (function, function, self.keep))
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
        return [InvocationRecord(*row[:9], logs=json.loads(row[9]), truncated=bool(row[10])) for row in rows]

    def forget(self, function: str) -> None:
        """Drop a deleted function's records."""
        self.flush()
        with self._lock:
            self._conn.execute("DELETE FROM invocations WHERE function = ?", (function,))

    def close(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=2)
        self.flush()
        with self._lock:
            self._conn.close()
