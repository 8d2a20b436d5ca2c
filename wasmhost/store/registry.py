"""The durable function registry: names, versions and config in SQLite; modules as blobs.

Why it is built this way:

- Module bytes are content-addressed files, written crash-safely (temp file, fsync, rename,
  fsync dir) *before* the row that references them is committed, so a committed version never
  points at a partial module.
- Every write is one SQLite transaction (WAL, synchronous=FULL, BEGIN IMMEDIATE), so several
  uvicorn worker processes can share one data directory without losing or half-showing a write.
- Versions are immutable: an update appends a version, a rollback moves the active pointer.
- `resolve` runs on every invocation, so it answers from an in-memory cache that is dropped
  whenever `PRAGMA data_version` says that another connection has committed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import errors
from ..inputs import MAX_VERSION, valid_name
from ..models import Expect, FunctionInfo, FunctionVersion, Limits, Route
from .blobs import BlobFiles
from .files import fsync_dir
from .layout import DIGEST, REGISTRY_DB, DataDir
from .walindex import WalIndexHeader

APPLICATION_ID = 0x7761736D  # "wasm" in the SQLite header: tells our file from a foreign one
SCHEMA_VERSION = 3  # 2: functions.private and functions.concurrency; 3: retired
BUSY_TIMEOUT_S = 10.0
CACHE_MAX_ENTRIES = 4096

_SCHEMA = (
    "CREATE TABLE functions (name TEXT PRIMARY KEY, active_version INTEGER NOT NULL,"
    " created_at REAL NOT NULL, updated_at REAL NOT NULL,"
    " private INTEGER NOT NULL DEFAULT 0, concurrency INTEGER NOT NULL DEFAULT 0)",
    # imports, exports, config and routes are JSON text; a row is never updated once written
    "CREATE TABLE versions (name TEXT NOT NULL, version INTEGER NOT NULL, digest TEXT NOT NULL,"
    " size INTEGER NOT NULL, abi TEXT NOT NULL, imports TEXT NOT NULL, exports TEXT NOT NULL,"
    " fuel INTEGER NOT NULL, timeout_ms INTEGER NOT NULL, memory_mb INTEGER NOT NULL,"
    " config TEXT NOT NULL, entrypoint TEXT, routes TEXT NOT NULL, created_at REAL NOT NULL,"
    " PRIMARY KEY (name, version))",
    "CREATE INDEX versions_by_digest ON versions (digest)",
    # The last version number of each deleted function: a name deployed again goes on from
    # there, so `name@N` never means other code than it meant before the delete.
    "CREATE TABLE retired (name TEXT PRIMARY KEY, last_version INTEGER NOT NULL)",
)
VERSION_COLUMNS = ("name", "version", "digest", "size", "abi", "imports", "exports", "fuel",
            "timeout_ms", "memory_mb", "config", "entrypoint", "routes", "created_at")
# A version's row and its function's access policy (which every version shares).
_V = ", ".join("v." + c for c in VERSION_COLUMNS) + ", f.private, f.concurrency"
# Schema upgrades, in order: _MIGRATIONS[n] takes a version-n registry to n+1, in the
# same transaction that records the new version (all or nothing).
_MIGRATIONS = {
    1: ("ALTER TABLE functions ADD COLUMN private INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE functions ADD COLUMN concurrency INTEGER NOT NULL DEFAULT 0"),
    2: ("CREATE TABLE retired (name TEXT PRIMARY KEY, last_version INTEGER NOT NULL)",),
}
_SELECT_ONE = (f"SELECT {_V} FROM functions f JOIN versions v ON v.name = f.name"
               " AND v.version = coalesce(?, f.active_version) WHERE f.name = ?")
_SELECT_INFO = (f"SELECT f.active_version, f.created_at, f.updated_at, {_V}"
                " FROM functions f JOIN versions v ON v.name = f.name")


def _name_ok(name: Any) -> bool:
    return valid_name(name)


def _version_ok(version: Any) -> bool:
    return type(version) is int and 1 <= version <= MAX_VERSION


def _limits_ok(limits: Any) -> bool:
    return isinstance(limits, Limits) and all(type(v) is int and 0 <= v < 2**63 for v in limits.to_dict().values())


def _limit_changes_ok(limits: Any) -> bool:
    known = Limits.__dataclass_fields__
    return isinstance(limits, Mapping) and all(k in known and type(v) is int and 0 <= v < 2**63
                                               for k, v in limits.items())


def _config_ok(config: Any) -> bool:
    """str -> str, in text UTF-8 can carry (what survives the JSON column and reaches a guest)."""
    if not isinstance(config, Mapping):
        return False
    for key, value in config.items():
        if not (isinstance(key, str) and isinstance(value, str)):
            return False
        try:
            key.encode(), value.encode()
        except UnicodeEncodeError:
            return False
    return True


def _policy_ok(private: Any, concurrency: Any) -> bool:
    return (private is None or type(private) is bool) and (
        concurrency is None or (type(concurrency) is int and 0 <= concurrency <= 1_000_000))


def _strings_ok(items: Any) -> bool:
    return not isinstance(items, (str, bytes)) and all(isinstance(i, str) for i in items)


# What a full disk looks like: ENOSPC; EDQUOT (a quota); EFBIG (a file size limit, RLIMIT_FSIZE).
def _db_error(exc: sqlite3.Error) -> errors.WasmhostError:
    if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
        return errors.StorageFull("the registry database cannot grow: the disk is full; nothing was stored")
    return errors.InternalError(f"registry database error: {exc}")


def _check_expect(conn: sqlite3.Connection, name: str, expect: Expect | None) -> None:
    """Refuse the write (inside its transaction) when the function is not as the client expects."""
    if expect is None:
        return
    row = conn.execute("SELECT active_version FROM functions WHERE name = ?", (name,)).fetchone()
    active = row[0] if row is not None else None
    if not expect.allows(active):
        if active is None:
            raise errors.PreconditionFailed(f"function {name!r} does not exist (If-Match)", active_version=None)
        if expect.exists is False:
            raise errors.PreconditionFailed(f"function {name!r} exists already (If-None-Match: *)",
                                            active_version=active)
        raise errors.PreconditionFailed(
            f"function {name!r} changed: its active version is {active}, not the one If-Match names; "
            "read it again and retry", active_version=active)


def version_from_row(row: Sequence[Any]) -> FunctionVersion:
    (name, version, digest, size, abi, imports, exports, fuel, timeout_ms, memory_mb,
     config, entrypoint, routes, created_at, private, concurrency) = row
    try:
        return FunctionVersion(
            name=name, version=version, digest=digest, size=size, abi=abi,
            imports=tuple(json.loads(imports)), exports=tuple(json.loads(exports)),
            limits=Limits(fuel=fuel, timeout_ms=timeout_ms, memory_mb=memory_mb),
            config=dict(json.loads(config)), entrypoint=entrypoint,
            routes=tuple(Route(r["path"], r["export"], bool(r["prefix"])) for r in json.loads(routes)),
            created_at=created_at, private=bool(private), concurrency=int(concurrency))
    except (ValueError, KeyError, TypeError) as exc:
        raise errors.InternalError(f"registry row for {name!r} version {version} is corrupt") from exc


def _infos_from_rows(rows: list[Any]) -> list[FunctionInfo]:
    """Group `_SELECT_INFO` rows (ordered by name, version) into FunctionInfo values."""
    infos = []
    for _, group in itertools.groupby(rows, key=lambda r: r[3]):
        group = list(group)
        active_number, created_at, updated_at = group[0][:3]
        versions = tuple(version_from_row(r[3:]) for r in group)
        active = next((v for v in versions if v.version == active_number), None)
        if active is None:
            raise errors.InternalError(f"function {versions[0].name!r} has no active version")
        infos.append(FunctionInfo(name=active.name, active=active, versions=versions,
                                  created_at=created_at, updated_at=updated_at))
    return infos


class Registry:
    """Functions, their versions and their modules, stored under one data directory.

    Thread-safe. Two SQLite connections, each behind its own lock: `_hot` serves `resolve`
    (reads in WAL mode never wait for writers), `_conn` serves writes and admin reads, so a
    write waiting for another process never stalls invocations. `recheck_s` bounds how long
    `resolve` may serve a version that another process has replaced (0: check at every call).
    """

    def __init__(self, data: DataDir | str | os.PathLike[str], *, recheck_s: float = 0.001) -> None:
        self.data = data if isinstance(data, DataDir) else DataDir(Path(data))
        self.data_dir = self.data.root
        self._recheck_s = recheck_s
        self._fresh_until = 0.0
        self.blobs = BlobFiles(self.data)
        self._cache: dict[tuple[str, int | None], FunctionVersion] = {}
        self._hot_lock = threading.Lock()
        self._lock = threading.Lock()
        try:
            self.data.blobs.mkdir(parents=True, exist_ok=True)
            for d in (self.data_dir, self.data.blobs.parent, self.data.blobs):
                fsync_dir(d)
        except OSError as exc:
            raise errors.InternalError(f"cannot create the data directory: {exc.strerror}") from exc
        conns: list[sqlite3.Connection] = []
        try:
            conns.append(self._connect())
            self._init_schema(conns[0])
            conns.append(self._connect())
            self._data_version = conns[1].execute("PRAGMA data_version").fetchone()[0]
        except BaseException as exc:
            for conn in conns:
                conn.close()
            if isinstance(exc, sqlite3.Error):
                raise errors.InternalError(f"cannot open the function registry ({REGISTRY_DB}): {exc}") from exc
            raise
        self._conn, self._hot = conns
        # Both connections are open, so SQLite holds the -shm file open until close().
        self._wal_index = WalIndexHeader(self.data.registry_db)
        self._wal_seen: bytes | None = None  # the WAL-index header at the last data_version check

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.data.registry_db, timeout=BUSY_TIMEOUT_S,
                               isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA synchronous = FULL")  # a commit that returned is on disk
            return conn
        except BaseException:
            conn.close()
            raise

    def _init_schema(self, conn: sqlite3.Connection) -> None:
        """Create the tables once (several processes may start at once: one creates them)."""
        self._check_ours(conn)  # before switching to WAL, which would rewrite a foreign file
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:  # switching to WAL can report "locked" without calling the busy handler
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        if str(mode).lower() != "wal":
            raise errors.InternalError(f"the function registry cannot use WAL mode (got {mode!r})")
        conn.execute("BEGIN IMMEDIATE")
        try:
            if self._check_ours(conn):
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            else:
                (schema,) = conn.execute("PRAGMA user_version").fetchone()
                for step in range(schema, SCHEMA_VERSION):
                    for statement in _MIGRATIONS[step]:
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")

    @staticmethod
    def _check_ours(conn: sqlite3.Connection) -> bool:
        """True for an empty database, False for ours (an older schema is upgraded by the
        caller); raise for a foreign SQLite file or a newer schema."""
        app_id, schema, tables = conn.execute(  # one statement: one consistent snapshot
            "SELECT a.application_id, u.user_version, (SELECT count(*) FROM sqlite_master)"
            " FROM pragma_application_id AS a, pragma_user_version AS u").fetchone()
        if app_id == 0 and schema == 0 and tables == 0:
            return True
        if app_id != APPLICATION_ID:
            raise errors.InternalError(
                f"{REGISTRY_DB} in the data directory is not a wasmhost registry (foreign SQLite database)")
        if schema not in _MIGRATIONS and schema != SCHEMA_VERSION:
            raise errors.InternalError(
                f"{REGISTRY_DB} has schema version {schema}; this wasmhost supports {SCHEMA_VERSION}")
        return False

    def close(self) -> None:
        """Close both connections; later calls raise InternalError."""
        with self._lock, self._hot_lock:
            self._wal_index.forget()  # before SQLite closes it: the number may be reused
            self._conn.close()
            self._hot.close()
            self._cache.clear()
            self._fresh_until = 0.0

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- blobs (the files are BlobFiles'; which are in use is the registry's to say) ----------

    def blob_path(self, digest: str) -> Path:
        return self.blobs.path(digest)

    def put_blob(self, wasm: bytes) -> str:
        """Store a module durably and return its sha256; the bytes are on disk when this returns."""
        return self.blobs.put(wasm)

    def discard_blob(self, digest: str) -> bool:
        """Remove the blob of a deploy that failed after writing it, unless a version references
        it (another deploy of the same bytes may have committed meanwhile). Under the write
        lock, as gc_blobs: a commit checks its blob inside that lock. True if removed."""
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM versions WHERE digest = ? LIMIT 1", (digest,)).fetchone():
                return False
            return self.blobs.remove(digest)

    def has_blob(self, digest: str) -> bool:
        return self.blobs.exists(digest)

    def read_blob(self, digest: str) -> bytes:
        """The module bytes, verified against their digest (a bad disk must not run bad code)."""
        return self.blobs.read(digest)

    # -- reads -----------------------------------------------------------------------------

    def resolve(self, name: str, version: int | None = None) -> FunctionVersion:
        """The active version of `name` (or the given one): the hot path of every invocation.

        A hit costs a dict lookup. `PRAGMA data_version` is asked at most once per `recheck_s`,
        so another process's write shows here within `recheck_s`; this object's own writes show
        at once.
        """
        key = (name, version)
        plain = type(name) is str and (version is None or type(version) is int)  # hashable, no bool
        if plain and time.monotonic() < self._fresh_until:  # lock-free: dict reads are atomic
            found = self._cache.get(key)
            if found is not None:
                return found
        with self._hot_lock:
            try:
                now = time.monotonic()
                if now >= self._fresh_until:
                    # An unchanged WAL-index header: nothing was committed, and the PRAGMA
                    # (a read transaction) would answer the same (walindex.py).
                    header = self._wal_index.read()
                    if header is None or header != self._wal_seen:
                        data_version = self._hot.execute("PRAGMA data_version").fetchone()[0]
                        if data_version != self._data_version:  # another connection committed
                            self._data_version = data_version
                            self._cache.clear()
                        self._wal_seen = header
                    self._fresh_until = now + self._recheck_s
                found = self._cache.get(key) if plain else None
                if found is not None:
                    return found
                found = self._load(self._hot, name, version)
            except sqlite3.Error as exc:
                raise _db_error(exc) from exc
            if len(self._cache) >= CACHE_MAX_ENTRIES:
                self._cache.clear()
            self._cache[key] = found
            return found

    def preload(self, limit: int = CACHE_MAX_ENTRIES // 2) -> int:
        """Fill the resolve cache with the active versions (at start-up), so that the
        first call after a restart runs no SQL. Returns how many were loaded."""
        with self._hot_lock:
            try:
                data_version = self._hot.execute("PRAGMA data_version").fetchone()[0]
                rows = self._hot.execute(
                    f"SELECT {_V} FROM functions f JOIN versions v ON v.name = f.name"
                    " AND v.version = f.active_version LIMIT ?", (limit,)).fetchall()
            except sqlite3.Error as exc:
                raise _db_error(exc) from exc
            self._cache.clear()
            for row in rows:
                fv = version_from_row(row)
                self._cache[(fv.name, None)] = fv
            self._data_version = data_version
            self._fresh_until = time.monotonic() + self._recheck_s
            return len(rows)

    def _load(self, conn: sqlite3.Connection, name: str, version: int | None) -> FunctionVersion:
        assert type(name) is str and (version is None or _version_ok(version)), (name, version)
        # One read transaction: both queries see the same snapshot, so a delete and
        # re-create committed in between cannot look like "no active version".
        own = not conn.in_transaction  # inside a write transaction the snapshot is already one
        if own:
            conn.execute("BEGIN")
        try:
            row = conn.execute(_SELECT_ONE, (version, name)).fetchone()
            exists = row is not None or conn.execute(
                "SELECT 1 FROM functions WHERE name = ?", (name,)).fetchone() is not None
        finally:
            if own:
                conn.execute("COMMIT")
        if row is not None:
            return version_from_row(row)
        if not exists:
            raise errors.NotFound(f"no function named {name!r}")
        if version is None:
            raise errors.InternalError(f"function {name!r} has no active version")
        raise errors.NotFound(f"function {name!r} has no version {version}")

    def get(self, name: str) -> FunctionInfo:
        """A function with all its versions, ascending."""
        assert _name_ok(name), name
        with self._read() as conn:
            rows = conn.execute(_SELECT_INFO + " WHERE f.name = ? ORDER BY v.version", (name,)).fetchall()
        if not rows:
            raise errors.NotFound(f"no function named {name!r}")
        return _infos_from_rows(rows)[0]

    def list(self) -> list[FunctionInfo]:
        """Every function, sorted by name."""
        with self._read() as conn:
            rows = conn.execute(_SELECT_INFO + " ORDER BY f.name, v.version").fetchall()
        return _infos_from_rows(rows)

    def check_expect(self, name: str, expect: Expect) -> None:
        """PreconditionFailed unless `name` is as `expect` says (a read: writes check in their
        own transaction)."""
        assert _name_ok(name), name
        with self._read() as conn:
            _check_expect(conn, name, expect)

    def referenced_digests(self) -> set[str]:
        with self._read() as conn:
            return {d for (d,) in conn.execute("SELECT DISTINCT digest FROM versions")}

    # -- writes ----------------------------------------------------------------------------

    def create_version(self, name: str, *, digest: str, size: int, abi: str, imports: Sequence[str],
                       exports: Sequence[str], limits: Limits, config: Mapping[str, str],
                       entrypoint: str | None = None, routes: Sequence[Route] = (),
                       private: bool | None = None, concurrency: int | None = None,
                       expect: Expect | None = None) -> FunctionVersion:
        """Append a version (creating the function if new) and make it active, in one transaction.
        `private` and `concurrency` set the function's policy; None keeps it (new: public, 0).
        `expect`: PreconditionFailed, and nothing written, unless the function is as expected."""
        # The Host checked what its caller gave (wasmhost/inputs.py): these are the store's invariants.
        assert _name_ok(name) and isinstance(digest, str) and DIGEST.fullmatch(digest), (name, digest)
        assert type(size) is int and size >= 0 and isinstance(abi, str) and abi, (size, abi)
        assert entrypoint is None or (isinstance(entrypoint, str) and entrypoint), entrypoint
        assert not isinstance(routes, (str, bytes)) and all(isinstance(r, Route) for r in routes), routes
        assert _strings_ok(imports) and _strings_ok(exports), (imports, exports)
        assert _limits_ok(limits) and _config_ok(config) and _policy_ok(private, concurrency)
        fv = FunctionVersion(
            name=name, version=0, digest=digest, size=size, abi=abi,  # type: ignore[arg-type]
            imports=tuple(imports), exports=tuple(exports), limits=limits, config=dict(config),
            entrypoint=entrypoint, routes=tuple(routes))
        with self._write() as conn:
            _check_expect(conn, name, expect)
            self.blobs.check(digest, size)  # inside the write lock, so gc_blobs cannot race us
            row = conn.execute("SELECT private, concurrency FROM functions WHERE name = ?", (name,)).fetchone()
            old_private, old_concurrency = row if row is not None else (False, 0)
            fv = dataclasses.replace(
                fv, version=self._next_version(conn, name), created_at=time.time(),
                private=bool(old_private) if private is None else private,
                concurrency=old_concurrency if concurrency is None else concurrency)
            self._insert(conn, fv)
        return fv

    def update(self, name: str, *, limits: Limits | Mapping[str, int] | None = None,
               config: Mapping[str, str] | None = None, entrypoint: str | None = None,
               private: bool | None = None, concurrency: int | None = None,
               expect: Expect | None = None) -> FunctionVersion:
        """Change what is named, in one transaction, and return the active version as it now
        resolves.

        `limits` is a partial change ({"fuel": 5}; a `Limits` names all three), merged inside the transaction into the
        version active at commit: two updates naming different fields compose, whatever their
        order, and neither undoes the other (nor a deploy that committed in between). Limits,
        config (replaced, not merged) and entrypoint ("" clears it) make a new version; the
        policy (`private`, `concurrency`) is the function's and makes none.
        """
        if isinstance(limits, Limits):
            limits = limits.to_dict()
        assert _name_ok(name), name
        assert any(x is not None for x in (limits, config, entrypoint, private, concurrency)), "an update names something"
        assert entrypoint is None or isinstance(entrypoint, str), entrypoint
        assert (limits is None or _limit_changes_ok(limits)) and (config is None or _config_ok(config))
        assert _policy_ok(private, concurrency), (private, concurrency)
        changes: dict[str, Any] = {}
        if config is not None:
            changes["config"] = dict(config)
        if entrypoint is not None:
            changes["entrypoint"] = entrypoint or None
        with self._write() as conn:
            _check_expect(conn, name, expect)
            active = self._load(conn, name, None)
            if private is not None or concurrency is not None:
                conn.execute("UPDATE functions SET private = coalesce(?, private),"
                             " concurrency = coalesce(?, concurrency), updated_at = ? WHERE name = ?",
                             (private, concurrency, time.time(), name))
                active = dataclasses.replace(active, private=active.private if private is None else private,
                                             concurrency=active.concurrency if concurrency is None else concurrency)
            if limits or changes:
                if limits:
                    changes["limits"] = dataclasses.replace(active.limits, **limits)
                active = dataclasses.replace(active, **changes, version=self._next_version(conn, name),
                                             created_at=time.time())
                self._insert(conn, active)
        return active

    def set_policy(self, name: str, *, private: bool | None = None,
                   concurrency: int | None = None, expect: Expect | None = None) -> FunctionVersion:
        """Change who may call a function and how many of its calls may run at once. This is
        the function's, not a version's: no new version, and rollbacks leave it as it is.
        Returns the active version as it now resolves."""
        return self.update(name, private=private, concurrency=concurrency, expect=expect)

    def rollback(self, name: str, version: int | None = None, expect: Expect | None = None) -> FunctionVersion:
        """Make `version` active again (None: the highest version below the active one)."""
        assert _name_ok(name) and (version is None or _version_ok(version)), (name, version)
        with self._write() as conn:
            _check_expect(conn, name, expect)
            active = self._load(conn, name, None)
            if version is None:
                (version,) = conn.execute("SELECT max(version) FROM versions WHERE name = ? AND version < ?",
                                          (name, active.version)).fetchone()
                if version is None:
                    raise errors.NotFound(f"function {name!r} has no version before {active.version}")
            target = self._load(conn, name, version)
            conn.execute("UPDATE functions SET active_version = ?, updated_at = ? WHERE name = ?",
                         (version, time.time(), name))
        return target

    def delete(self, name: str, expect: Expect | None = None) -> None:
        """Remove the function and all its versions; its blobs go later, through gc_blobs. Its
        last version number is kept, so that a new function of that name numbers on from it."""
        assert _name_ok(name), name
        with self._write() as conn:
            _check_expect(conn, name, expect)
            last = self._next_version(conn, name) - 1
            if conn.execute("DELETE FROM functions WHERE name = ?", (name,)).rowcount == 0:
                raise errors.NotFound(f"no function named {name!r}")
            conn.execute("DELETE FROM versions WHERE name = ?", (name,))
            conn.execute("INSERT INTO retired (name, last_version) VALUES (?, ?) ON CONFLICT (name)"
                         " DO UPDATE SET last_version = max(last_version, excluded.last_version)", (name, last))

    def gc_blobs(self, min_age_s: float = 3600.0) -> list[str]:
        """Delete unreferenced blobs older than `min_age_s` (and stale temp files); return their digests.

        The age rule protects a deploy in another process whose blob is written but whose row is not
        committed yet; holding the SQLite write lock makes `create_version`'s blob check and its
        insert atomic with respect to this sweep.
        """
        with self._write() as conn:
            referenced = {d for (d,) in conn.execute("SELECT DISTINCT digest FROM versions")}
            return self.blobs.sweep(referenced, min_age_s)

    # -- plumbing --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise _db_error(exc) from exc

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One BEGIN IMMEDIATE transaction: committed whole or rolled back whole."""
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                finally:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
            except sqlite3.Error as exc:
                raise _db_error(exc) from exc
            finally:
                with self._hot_lock:  # under the lock: a resolve cannot store a row read before the commit
                    self._cache.clear()

    @staticmethod
    def _next_version(conn: sqlite3.Connection, name: str) -> int:
        """One more than any number `name` has had, its deleted versions' included."""
        (last,) = conn.execute(
            "SELECT max(coalesce((SELECT max(version) FROM versions WHERE name = ?), 0),"
            " coalesce((SELECT last_version FROM retired WHERE name = ?), 0))", (name, name)).fetchone()
        return last + 1

    @staticmethod
    def _insert(conn: sqlite3.Connection, fv: FunctionVersion) -> None:
        conn.execute(
            f"INSERT INTO versions ({', '.join(VERSION_COLUMNS)}) VALUES ({', '.join('?' * len(VERSION_COLUMNS))})",
            (fv.name, fv.version, fv.digest, fv.size, fv.abi, json.dumps(list(fv.imports)),
             json.dumps(list(fv.exports)), fv.limits.fuel, fv.limits.timeout_ms, fv.limits.memory_mb,
             json.dumps(fv.config, sort_keys=True), fv.entrypoint,
             json.dumps([{"path": r.path, "export": r.export, "prefix": r.prefix} for r in fv.routes]),
             fv.created_at))
        conn.execute(
            "INSERT INTO functions (name, active_version, created_at, updated_at, private, concurrency)"
            " VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET active_version = excluded.active_version,"
            " updated_at = excluded.updated_at, private = excluded.private, concurrency = excluded.concurrency",
            (fv.name, fv.version, fv.created_at, fv.created_at, int(fv.private), fv.concurrency))
