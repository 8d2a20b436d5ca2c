"""The function registry against real SQLite files and real processes (no mocks)."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from wasmhost import errors
from wasmhost.models import FunctionVersion, Limits, Route
from wasmhost.store.layout import REGISTRY_DB as DB_FILE
from wasmhost.inputs import validate_name
from wasmhost.store.registry import APPLICATION_ID, SCHEMA_VERSION, Registry

LIMITS = Limits(fuel=1_000_000, timeout_ms=1000, memory_mb=64)
WASM = b"\0asm\x01\0\0\0"
OLD = time.time() - 7200  # an mtime older than gc_blobs' default min age


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    registry = Registry(tmp_path)
    yield registry
    registry.close()


def deploy(reg: Registry, name: str, wasm: bytes = WASM, **fields: object) -> FunctionVersion:
    digest = reg.put_blob(wasm)
    args: dict[str, object] = dict(digest=digest, size=len(wasm), abi="handler", imports=[],
                                   exports=["memory", "wasmhost_handle"], limits=LIMITS, config={})
    args.update(fields)
    return reg.create_version(name, **args)  # type: ignore[arg-type]


# -- names ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["a", "0", "a-b", "9lives", "x" * 63, "a-", "hello-world-2"])
def test_good_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", "x" * 64, "Foo", "-a", "a_b", "a.b", "a b", "é", "ａ", "a\n", "a/b"])
def test_bad_names_state_the_rule(name: str) -> None:
    with pytest.raises(errors.BadRequest) as info:
        validate_name(name)
    assert "1-63 characters of a-z, 0-9 and '-', starting with a letter or digit" in info.value.message
    assert info.value.code == "bad_request"


def test_name_must_be_a_string() -> None:
    with pytest.raises(errors.BadRequest, match="string"):
        validate_name(None)  # type: ignore[arg-type]


def test_every_host_entry_point_validates_names(host) -> None:
    """Names are checked once, at the Host boundary (wasmhost/inputs.py)..."""
    for call in (lambda: host.resolve("Bad"), lambda: host.get("Bad"), lambda: host.delete("-x"),
                 lambda: host.rollback("a_b"), lambda: host.update("UP", config={}),
                 lambda: host.set_policy("UP", private=True), lambda: host.deploy("x" * 64, b"\0asm")):
        with pytest.raises(errors.BadRequest):
            call()


def test_the_store_asserts_valid_names(reg: Registry) -> None:
    """...and the store asserts that it never gets another (an unknown name is only not found)."""
    for call in (lambda: reg.get("Bad"), lambda: reg.delete("-x"), lambda: reg.rollback("a_b"),
                 lambda: reg.update("UP", config={}), lambda: deploy(reg, "x" * 64)):
        with pytest.raises(AssertionError):
            call()
    with pytest.raises(errors.NotFound):
        reg.resolve("Bad")
    assert reg.list() == []


# -- blobs ------------------------------------------------------------------------------------

def test_put_blob_is_content_addressed_and_idempotent(reg: Registry, tmp_path: Path) -> None:
    digest = reg.put_blob(WASM)
    assert digest == hashlib.sha256(WASM).hexdigest()
    path = tmp_path / "blobs" / "sha256" / digest[:2] / f"{digest}.wasm"
    assert reg.blob_path(digest) == path
    assert path.read_bytes() == WASM
    os.utime(path, (OLD, OLD))
    assert reg.put_blob(WASM) == digest  # second upload: not rewritten, but touched
    assert path.stat().st_mtime > OLD + 3600
    assert path.read_bytes() == WASM
    assert sorted(p.name for p in path.parent.iterdir()) == [f"{digest}.wasm"]  # no temp files left
    assert reg.read_blob(digest) == WASM


def test_put_blob_repairs_a_truncated_blob(reg: Registry) -> None:
    digest = reg.put_blob(WASM)
    path = reg.blob_path(digest)
    path.chmod(0o644)
    path.write_bytes(WASM[:3])
    assert reg.put_blob(WASM) == digest
    assert reg.read_blob(digest) == WASM


def test_read_blob_detects_corruption_and_absence(reg: Registry, tmp_path: Path) -> None:
    digest = reg.put_blob(WASM)
    path = reg.blob_path(digest)
    path.chmod(0o644)
    path.write_bytes(b"\0asm\x02\0\0\0")  # same size, other bytes
    with pytest.raises(errors.InternalError, match="corrupt") as info:
        reg.read_blob(digest)
    assert str(tmp_path) not in info.value.message
    path.unlink()
    with pytest.raises(errors.InternalError, match="missing") as info:
        reg.read_blob(digest)
    assert str(tmp_path) not in info.value.message


def test_blob_path_refuses_non_digests(reg: Registry) -> None:
    for bad in ("../../etc/passwd", "AB" * 32, "ab" * 31, ""):
        with pytest.raises(AssertionError):
            reg.blob_path(bad)


# -- create, resolve, get, list ---------------------------------------------------------------

def test_create_then_resolve_round_trips_every_field(reg: Registry) -> None:
    before = time.time()
    routes = [Route("/a", "run_a", False), Route("/files", "serve", True)]
    created = deploy(reg, "hello", abi="wagi", imports=["wasi_snapshot_preview1.fd_write"],
                     exports=["_start", "_routes"], config={"GREETING": "hi"}, entrypoint="main",
                     routes=routes)
    assert created.version == 1
    assert before <= created.created_at <= time.time()
    got = reg.resolve("hello")
    assert got == created
    assert got.abi == "wagi" and got.entrypoint == "main" and got.limits == LIMITS
    assert got.imports == ("wasi_snapshot_preview1.fd_write",) and got.exports == ("_start", "_routes")
    assert got.routes == tuple(routes) and got.config == {"GREETING": "hi"}
    assert got.digest == hashlib.sha256(WASM).hexdigest() and got.size == len(WASM)


def test_versions_increment_and_old_ones_stay_resolvable(reg: Registry) -> None:
    digests = [deploy(reg, "fn", f"module {i}".encode()).digest for i in range(3)]
    assert reg.resolve("fn").version == 3
    assert [reg.resolve("fn", v).digest for v in (1, 2, 3)] == digests
    info = reg.get("fn")
    assert info.name == "fn" and info.active.version == 3
    assert [v.version for v in info.versions] == [1, 2, 3]
    assert info.versions[0].config is not info.versions[1].config  # each version owns its dict
    assert info.created_at <= info.updated_at


def test_list_is_sorted_by_name(reg: Registry) -> None:
    assert reg.list() == []
    for name in ("zeta", "alpha", "mid"):
        deploy(reg, name)
    deploy(reg, "alpha", b"second")
    listed = reg.list()
    assert [f.name for f in listed] == ["alpha", "mid", "zeta"]
    assert [len(f.versions) for f in listed] == [2, 1, 1]
    assert listed[0].active.version == 2


def test_resolve_errors(reg: Registry) -> None:
    with pytest.raises(errors.NotFound, match="no function named 'x'"):
        reg.resolve("x")
    deploy(reg, "x")
    with pytest.raises(errors.NotFound, match="function 'x' has no version 7"):
        reg.resolve("x", 7)
    # The Host refuses bad versions (tests/test_fuzz_registry.py); the store asserts it never gets one.
    for bad in (0, -1, True, "1", 1.0, [1], 2**63):
        with pytest.raises(AssertionError):
            reg.resolve("x", bad)  # type: ignore[arg-type]
    reg.resolve("x", 1)  # cached under a key equal to (name, True): still refused below
    with pytest.raises(AssertionError):
        reg.resolve("x", True)  # type: ignore[arg-type]
    with pytest.raises(AssertionError):
        reg.resolve(["x"])  # type: ignore[arg-type]
    with pytest.raises(errors.NotFound):
        reg.get("nope")


def test_resolve_answers_from_its_cache(reg: Registry) -> None:
    deploy(reg, "hot")
    assert reg.resolve("hot") is reg.resolve("hot")


def test_create_needs_a_stored_blob_of_the_right_size(reg: Registry) -> None:
    with pytest.raises(errors.InternalError, match="not stored"):
        reg.create_version("fn", digest="ab" * 32, size=8, abi="handler", imports=[], exports=[],
                           limits=LIMITS, config={})
    with pytest.raises(errors.InternalError, match="bytes"):
        deploy(reg, "fn", size=len(WASM) + 1)
    with pytest.raises(errors.NotFound):
        reg.get("fn")  # nothing half-created


def test_create_asserts_its_fields(reg: Registry) -> None:
    """The Host checks what it is given; the store asserts, and stores nothing."""
    with pytest.raises(AssertionError):
        deploy(reg, "fn", config={"n": 1})
    with pytest.raises(AssertionError):
        deploy(reg, "fn", imports="wasi")
    with pytest.raises(AssertionError):
        deploy(reg, "fn", limits=Limits(fuel=-1, timeout_ms=1, memory_mb=1))
    assert reg.list() == []


# -- update, rollback, delete -----------------------------------------------------------------

def test_update_appends_a_version_with_the_changed_fields(reg: Registry) -> None:
    v1 = deploy(reg, "fn", config={"A": "1"}, routes=[Route("/", "x", True)])
    new_limits = Limits(fuel=5, timeout_ms=50, memory_mb=2)
    v2 = reg.update("fn", limits=new_limits)
    assert (v2.version, v2.limits, v2.config) == (2, new_limits, {"A": "1"})
    assert (v2.digest, v2.routes, v2.exports) == (v1.digest, v1.routes, v1.exports)
    v3 = reg.update("fn", config={"B": "2"}, entrypoint="alt")
    assert (v3.version, v3.limits, v3.config, v3.entrypoint) == (3, new_limits, {"B": "2"}, "alt")
    assert reg.resolve("fn") == v3
    assert reg.resolve("fn", 1) == v1  # versions are immutable
    assert reg.update("fn", entrypoint="").entrypoint is None
    with pytest.raises(AssertionError):
        reg.update("fn")  # the Host says "nothing to update" (tests/test_host.py)
    with pytest.raises(errors.NotFound):
        reg.update("ghost", config={})


def test_rollback_to_explicit_and_previous_versions(reg: Registry) -> None:
    for i in range(3):
        deploy(reg, "fn", f"m{i}".encode())
    assert reg.rollback("fn", 1).version == 1
    assert reg.resolve("fn").version == 1
    assert reg.rollback("fn", 3).version == 3
    assert reg.rollback("fn").version == 2  # the one before the active by number
    assert reg.resolve("fn").version == 2
    assert reg.update("fn", config={"K": "v"}).version == 4  # built from v2, numbered after the max
    assert reg.resolve("fn").digest == reg.resolve("fn", 2).digest


def test_rollback_errors(reg: Registry) -> None:
    with pytest.raises(errors.NotFound):
        reg.rollback("ghost")
    deploy(reg, "fn")
    with pytest.raises(errors.NotFound, match="no version before 1"):
        reg.rollback("fn")
    with pytest.raises(errors.NotFound, match="no version 9"):
        reg.rollback("fn", 9)
    with pytest.raises(AssertionError):
        reg.rollback("fn", 0)
    assert reg.resolve("fn").version == 1


def test_delete_then_not_found_and_numbering_goes_on(reg: Registry) -> None:
    deploy(reg, "fn")
    deploy(reg, "fn", b"two")
    deploy(reg, "other")
    assert reg.resolve("fn").version == 2
    reg.delete("fn")
    with pytest.raises(errors.NotFound):
        reg.resolve("fn")
    with pytest.raises(errors.NotFound):
        reg.get("fn")
    with pytest.raises(errors.NotFound):
        reg.delete("fn")
    assert [f.name for f in reg.list()] == ["other"]
    # Numbers go on after a delete: a caller pinned to fn@1 must not get other code.
    assert deploy(reg, "fn", b"again").version == 3
    with pytest.raises(errors.NotFound):
        reg.resolve("fn", 1)
    reg.delete("fn")
    assert deploy(reg, "fn", b"third").version == 4
    assert reg.read_blob(reg.resolve("fn").digest) == b"third"


# -- several registries on one directory ------------------------------------------------------

def test_resolve_sees_writes_of_another_registry(tmp_path: Path) -> None:
    with Registry(tmp_path, recheck_s=0) as reader, Registry(tmp_path) as writer:
        deploy(writer, "fn")
        first = reader.resolve("fn")
        assert reader.resolve("fn") is first  # served from the cache
        deploy(writer, "fn", b"two")
        assert reader.resolve("fn").version == 2
        writer.rollback("fn")
        assert reader.resolve("fn").version == 1
        writer.delete("fn")
        with pytest.raises(errors.NotFound):
            reader.resolve("fn")


def test_writes_of_another_registry_show_across_wal_checkpoints(tmp_path: Path) -> None:
    """resolve skips SQLite's data_version while the WAL-index header is unchanged: every
    commit must change it, also right after a checkpoint restarts the WAL."""
    with Registry(tmp_path, recheck_s=0) as reader, Registry(tmp_path) as writer:
        assert reader._wal_index.in_use  # the header check is in use here
        deploy(writer, "fn")
        for n in range(2, 12):
            assert reader.resolve("fn").version == n - 1
            assert reader.resolve("fn").version == n - 1  # unchanged header: served from the cache
            if n % 3 == 0:  # the next commit rewrites the WAL from its start
                writer._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            elif n % 3 == 1:
                writer._conn.execute("PRAGMA wal_checkpoint(RESTART)")
            deploy(writer, "fn", b"v%d" % n)
        assert reader.resolve("fn").version == 11


# SQLite's "dead man switch" lock on the -shm file (sqlite3 os_unix.c: UNIX_SHM_DMS, byte
# 128): every process with the database open holds it shared; the process that gets it
# exclusively believes it is alone and truncates and rebuilds the WAL index.
_TRY_DMS_LOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 128)
except OSError:
    sys.exit(3)
"""


def _another_process_could_rebuild_the_wal_index(data_dir: Path) -> bool:
    shm = str(data_dir / (DB_FILE + "-shm"))
    code = subprocess.run([sys.executable, "-c", _TRY_DMS_LOCK, shm], timeout=60).returncode
    assert code in (0, 3)
    return code == 0


def test_opening_and_closing_registries_keeps_sqlites_lock_on_the_wal_index(tmp_path: Path) -> None:
    """Closing any descriptor of a file drops every POSIX lock the process holds on it, so the
    registry must never open and close the -shm file itself (it did, to map the WAL-index
    header: a worker starting beside a live one then truncated the index, and the live one
    died of SIGBUS)."""
    with Registry(tmp_path) as first:
        assert not _another_process_could_rebuild_the_wal_index(tmp_path)
        Registry(tmp_path).close()  # a second registry in the same process, opened and closed
        assert not _another_process_could_rebuild_the_wal_index(tmp_path)
        deploy(first, "fn")
        assert first.resolve("fn").version == 1
        assert not _another_process_could_rebuild_the_wal_index(tmp_path)


def test_own_writes_show_at_once_whatever_the_recheck_interval(tmp_path: Path) -> None:
    with Registry(tmp_path, recheck_s=3600) as reg:
        deploy(reg, "fn")
        assert reg.resolve("fn").version == 1
        deploy(reg, "fn", b"two")
        assert reg.resolve("fn").version == 2
        reg.update("fn", config={"A": "1"})
        assert reg.resolve("fn").config == {"A": "1"}
        reg.rollback("fn", 1)
        assert reg.resolve("fn").version == 1
        reg.delete("fn")
        with pytest.raises(errors.NotFound):
            reg.resolve("fn")


def test_default_recheck_interval_bounds_staleness(tmp_path: Path) -> None:
    with Registry(tmp_path, recheck_s=0.05) as reader, Registry(tmp_path) as writer:
        deploy(writer, "fn")
        assert reader.resolve("fn").version == 1
        deploy(writer, "fn", b"two")
        time.sleep(0.06)
        assert reader.resolve("fn").version == 2


def test_reopen_keeps_everything(tmp_path: Path) -> None:
    with Registry(tmp_path) as reg:
        deploy(reg, "fn", config={"A": "1"})
        reg.update("fn", config={"A": "2"})
    with Registry(tmp_path) as reg:
        assert reg.resolve("fn").config == {"A": "2"}
        assert [v.version for v in reg.get("fn").versions] == [1, 2]


# -- garbage collection -----------------------------------------------------------------------

def test_gc_blobs_keeps_referenced_and_young_blobs(reg: Registry) -> None:
    kept = deploy(reg, "keep", b"referenced").digest
    young = reg.put_blob(b"young and unreferenced")
    old = reg.put_blob(b"old and unreferenced")
    dropped = deploy(reg, "gone", b"deleted function").digest
    reg.delete("gone")
    stale_tmp = reg.blob_path(old).parent / ".tmp-123-456-abcdef"
    stale_tmp.write_bytes(b"half")
    for digest in (kept, old, dropped):
        os.utime(reg.blob_path(digest), (OLD, OLD))
    os.utime(stale_tmp, (OLD, OLD))
    assert reg.referenced_digests() == {kept}
    assert reg.gc_blobs() == sorted([old, dropped])
    assert reg.read_blob(kept) == b"referenced"
    assert reg.read_blob(young) == b"young and unreferenced"
    assert not reg.blob_path(old).exists() and not stale_tmp.exists()
    assert reg.gc_blobs(min_age_s=0) == [young]
    assert reg.gc_blobs(min_age_s=0) == []


# -- damaged or foreign databases -------------------------------------------------------------

def test_corrupt_database_is_an_internal_error(tmp_path: Path) -> None:
    (tmp_path / DB_FILE).write_bytes(b"this is not a database" * 100)
    with pytest.raises(errors.InternalError) as info:
        Registry(tmp_path)
    assert DB_FILE in info.value.message and str(tmp_path) not in info.value.message


def test_foreign_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / DB_FILE)
    db.execute("CREATE TABLE functions (x)")
    db.commit()
    db.close()
    before = (tmp_path / DB_FILE).read_bytes()
    with pytest.raises(errors.InternalError, match="not a wasmhost registry"):
        Registry(tmp_path)
    assert (tmp_path / DB_FILE).read_bytes() == before  # not switched to WAL, not touched


def test_closed_registry_raises_internal_error(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    deploy(reg, "fn")
    reg.resolve("fn")
    reg.close()
    with pytest.raises(errors.InternalError):
        reg.resolve("fn")
    with pytest.raises(errors.InternalError):
        reg.list()


# -- concurrency ------------------------------------------------------------------------------

def test_threads_share_one_registry(reg: Registry) -> None:
    acked: list[int] = []
    failures: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(10):
                acked.append(deploy(reg, "shared", f"t{i}-{j}".encode()).version)
                assert reg.resolve("shared").version >= 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert sorted(acked) == list(range(1, 61))
    assert reg.resolve("shared").version == 60


PROCESSES = 3
PER_PROCESS = 25


def _process_worker(data_dir: str, worker: int, barrier: object, results: object) -> None:
    """Spawned child: open the registry at the same moment as the others, deploy, read, report."""
    try:
        barrier.wait()  # type: ignore[attr-defined]
        reg = Registry(data_dir)  # concurrent first start on an empty directory
        acked = []
        for j in range(PER_PROCESS):
            name = "shared" if j % 2 == 0 else f"own-{worker}"
            fv = deploy(reg, name, f"worker {worker} module {j}".encode())
            assert reg.resolve(name).version >= fv.version
            reg.list()
            acked.append((name, fv.version, fv.digest))
        reg.close()
        results.put((worker, acked, None))  # type: ignore[attr-defined]
    except BaseException as exc:  # noqa: BLE001 - sent to the parent
        results.put((worker, [], repr(exc)))  # type: ignore[attr-defined]


@pytest.mark.slow
def test_processes_share_one_data_dir_and_lose_nothing(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(PROCESSES), ctx.Queue()
    procs = [ctx.Process(target=_process_worker, args=(str(tmp_path), i, barrier, results))
             for i in range(PROCESSES)]
    for p in procs:
        p.start()
    reports = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert [error for _, _, error in reports] == [None] * PROCESSES

    acked: dict[str, dict[int, str]] = {}
    for _, entries, _ in reports:
        for name, version, digest in entries:
            assert version not in acked.setdefault(name, {}), f"{name} v{version} acknowledged twice"
            acked[name][version] = digest
    assert sum(len(v) for v in acked.values()) == PROCESSES * PER_PROCESS
    with Registry(tmp_path) as reg:
        assert [f.name for f in reg.list()] == [f"own-{i}" for i in range(PROCESSES)] + ["shared"]
        for name, versions in acked.items():
            stored = reg.get(name).versions
            assert [v.version for v in stored] == list(range(1, len(versions) + 1))  # consecutive
            assert {v.version: v.digest for v in stored} == versions  # every acknowledged create is there
            assert reg.resolve(name).version == len(versions)
            for v in stored:
                assert reg.read_blob(v.digest).startswith(b"worker ")


V1_SCHEMA = (  # the registry as wasmhost wrote it before functions had a policy (schema 1)
    "CREATE TABLE functions (name TEXT PRIMARY KEY, active_version INTEGER NOT NULL,"
    " created_at REAL NOT NULL, updated_at REAL NOT NULL)",
    "CREATE TABLE versions (name TEXT NOT NULL, version INTEGER NOT NULL, digest TEXT NOT NULL,"
    " size INTEGER NOT NULL, abi TEXT NOT NULL, imports TEXT NOT NULL, exports TEXT NOT NULL,"
    " fuel INTEGER NOT NULL, timeout_ms INTEGER NOT NULL, memory_mb INTEGER NOT NULL,"
    " config TEXT NOT NULL, entrypoint TEXT, routes TEXT NOT NULL, created_at REAL NOT NULL,"
    " PRIMARY KEY (name, version))",
    "CREATE INDEX versions_by_digest ON versions (digest)",
)


def test_a_schema_1_registry_is_upgraded_in_place(tmp_path: Path) -> None:
    """A data directory from before private/concurrency opens, keeps every version, and its
    functions are public with the default concurrency until told otherwise."""
    with Registry(tmp_path) as reg:  # for the blob
        digest = reg.put_blob(WASM)
    (tmp_path / DB_FILE).unlink()
    conn = sqlite3.connect(tmp_path / DB_FILE, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    for statement in V1_SCHEMA:
        conn.execute(statement)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 1")
    for version in (1, 2):
        conn.execute("INSERT INTO versions VALUES ('old', ?, ?, 8, 'handler', '[]', '[]', 5, 6, 7, '{}', NULL,"
                     " '[]', 1.0)", (version, digest))
    conn.execute("INSERT INTO functions VALUES ('old', 2, 1.0, 2.0)")
    conn.close()
    with Registry(tmp_path) as reg:
        fv = reg.resolve("old")
        assert (fv.version, fv.limits, fv.private, fv.concurrency) == (2, Limits(5, 6, 7), False, 0)
        assert [v.version for v in reg.get("old").versions] == [1, 2]
        assert reg.set_policy("old", private=True, concurrency=3).private is True
        assert reg.rollback("old").version == 1
        assert (reg.resolve("old").private, reg.resolve("old").concurrency) == (True, 3)
    with Registry(tmp_path) as reg:  # and it opens again as the current schema
        assert reg.resolve("old", 1).private is True
        reg.delete("old")  # schema 3's table of retired numbers is there too
        assert deploy(reg, "old").version == 3
    conn = sqlite3.connect(tmp_path / DB_FILE)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    conn.close()


def test_a_new_version_keeps_the_functions_policy(reg: Registry) -> None:
    digest = reg.put_blob(WASM)
    reg.create_version("p", digest=digest, size=8, abi="handler", imports=(), exports=(), limits=LIMITS, config={},
                       private=True, concurrency=2)
    fv = reg.create_version("p", digest=digest, size=8, abi="handler", imports=(), exports=(), limits=LIMITS,
                            config={})
    assert (fv.version, fv.private, fv.concurrency) == (2, True, 2)
    fv = reg.update("p", config={"A": "b"})
    assert (fv.version, fv.private, fv.concurrency) == (3, True, 2)
    fv = reg.create_version("p", digest=digest, size=8, abi="handler", imports=(), exports=(), limits=LIMITS,
                            config={}, private=False)
    assert (fv.private, fv.concurrency) == (False, 2)
    assert all(not v.private for v in reg.get("p").versions)
    for bad in ({"private": 1}, {"concurrency": -1}, {"concurrency": True}, {}):
        with pytest.raises(AssertionError):
            reg.set_policy("p", **bad)
    with pytest.raises(errors.NotFound):
        reg.set_policy("nobody", private=True)
