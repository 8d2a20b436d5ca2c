"""`wasmhost fsck`: check (and carefully repair) a data directory.

Why it exists: the registry promises that a committed version never points at a missing or
partial module, and the cache promises that wasmtime never sees artifact bytes that were not
checked. Both promises rest on a write order (blob before row, artifact before `.sum`) and on
SQLite. This module checks the promises from the outside, after a crash, a full disk or a bad
disk, without trusting the code that wrote the files.

What it looks at:

- `registry.sqlite3` (and `logs.sqlite3`): `PRAGMA integrity_check` (or `quick_check`), our
  application id, rows that parse, every function's active version present, no version row
  without its function.
- `blobs/sha256/ab/<digest>.wasm`: every referenced blob exists, has the row's size and hashes
  to its name (sha256, as `Registry.put_blob` names them); unreferenced (orphan) blobs; files
  whose content is not their name (corrupt); temp files that a crash left mid-write.
- `artifacts/<fingerprint>/ab/<digest>.cwasm` + `.sum`: the sum is present and right (size and
  XXH3-128, as `store.files.checksum` computes it); artifacts of digests no version uses; artifacts of
  engine fingerprints this configuration does not produce; stray temp files and sums.

Findings have a severity, because a crash by design leaves harmless leftovers:

- `error`: something a version depends on is broken (a referenced blob missing or corrupt, a
  function without its active version, a database that fails its integrity check). Never
  repaired automatically: the fix is a redeploy, a backup, or a person. Fails the check.
- `fault`: something is wrong but safely repairable (a corrupt cache artifact, an unreferenced
  blob whose bytes do not match its name). Fails the check until repaired.
- `garbage`: leftovers that are expected after a crash and harmless (temp files, orphan blobs,
  orphan or unsealed artifacts, other engines' artifacts). Reported, reclaimed by `--repair`,
  never a failure.

Repairs never touch a database row and never delete a blob that a version row references:
blob deletions happen inside the registry's write transaction (BEGIN IMMEDIATE, a few
milliseconds) after re-reading which digests are referenced, exactly as `Registry.gc_blobs`
does, so a deploy committing at the same moment cannot lose its blob. Artifacts are a cache
(recompiled from the blob on demand, and every load re-checks the sum), so deleting one is
safe at any time.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal

from .store import registry as reg
from .store.files import checksum
from .store.layout import (ARTIFACT_SUFFIX, BLOB_SUFFIX, DIGEST, LOGS_DB, REGISTRY_DB, SUM_SUFFIX, DataDir,
                           digest_of, is_temp)

Severity = Literal["error", "fault", "garbage"]
DEFAULT_MIN_AGE_S = 3600.0  # Registry.gc_blobs' default: a deploy in flight is younger than this


@dataclass(slots=True)
class Finding:
    """One problem. `path` is relative to the data directory; `function`/`version` name what it breaks."""

    kind: str
    severity: Severity
    detail: str
    path: str | None = None
    function: str | None = None
    version: int | None = None
    repaired: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "severity": self.severity, "detail": self.detail, "path": self.path,
                "function": self.function, "version": self.version, "repaired": self.repaired}

    def __str__(self) -> str:
        what = f" [{self.function} v{self.version}]" if self.function is not None else ""
        done = " (repaired)" if self.repaired else ""
        return f"{self.severity}: {self.kind}{what}: {self.detail}{done}"


@dataclass(slots=True)
class FsckReport:
    """The outcome of one check: what was looked at, and every finding (repaired or not)."""

    data_dir: Path
    fingerprints: tuple[str, ...]
    functions: int = 0
    versions: int = 0
    blobs: int = 0
    artifacts: int = 0
    findings: list[Finding] = field(default_factory=list)

    def add(self, kind: str, severity: Severity, detail: str, path: Path | None = None,
            function: str | None = None, version: int | None = None) -> Finding:
        rel = None if path is None else str(_relative(path, self.data_dir))
        finding = Finding(kind, severity, detail, rel, function, version)
        self.findings.append(finding)
        return finding

    @property
    def remaining(self) -> list[Finding]:
        """Unrepaired findings that fail the check (errors and faults; garbage never fails)."""
        return [f for f in self.findings if not f.repaired and f.severity != "garbage"]

    @property
    def ok(self) -> bool:
        return not self.remaining

    def to_dict(self) -> dict[str, Any]:
        return {"data_dir": str(self.data_dir), "ok": self.ok, "engine_fingerprints": list(self.fingerprints),
                "functions": self.functions, "versions": self.versions, "blobs": self.blobs,
                "artifacts": self.artifacts, "findings": [f.to_dict() for f in self.findings]}


def _relative(path: Path, root: Path) -> Path:
    try:
        return path.relative_to(root)
    except ValueError:
        return path


def current_fingerprints(data_dir: Path) -> tuple[str, ...]:
    """The artifact directories this configuration's servers read: with and without the pooling
    allocator, because a server falls back to the default allocator at run time when it cannot
    reserve the pool's address space. Built from the same WASMHOST_* settings as `serve`."""
    from .engine import EngineConfig, fingerprint_of
    from .settings import Settings

    cfg = EngineConfig.from_settings(Settings.from_env(data_dir=data_dir))
    return tuple(sorted({fingerprint_of(cfg.codegen_settings(p)) for p in (True, False)}))


def _sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _age(path: Path, now: float) -> float | None:
    try:
        return now - path.stat().st_mtime
    except FileNotFoundError:
        return None


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return True  # someone else removed it: the leftover is gone either way
    except OSError:
        return False


@contextlib.contextmanager
def _connect(path: Path, *, write: bool = False) -> Iterator[sqlite3.Connection]:
    """A connection that never creates a database (fsck must not turn a typo into a registry)
    and, unless `write`, cannot change one (query_only)."""
    conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=reg.BUSY_TIMEOUT_S, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(reg.BUSY_TIMEOUT_S * 1000)}")
        if not write:
            conn.execute("PRAGMA query_only = 1")
        yield conn
    finally:
        conn.close()


def _integrity(conn: sqlite3.Connection, quick: bool) -> list[str]:
    pragma = "quick_check" if quick else "integrity_check"
    rows = [r[0] for r in conn.execute(f"PRAGMA {pragma}").fetchall()]
    return [] if rows == ["ok"] else rows


class _Checker:
    def __init__(self, data_dir: Path, *, repair: bool, min_age_s: float, quick: bool,
                 fingerprints: tuple[str, ...] | None) -> None:
        self.data_dir = Path(data_dir)
        self.data = DataDir(self.data_dir)
        self.repair = repair
        self.min_age_s = min_age_s
        self.quick = quick
        self.now = time.time()
        self.report = FsckReport(self.data_dir, fingerprints if fingerprints is not None
                                 else current_fingerprints(self.data_dir))
        # digest -> [(function, version, size)] of every version row
        self.referenced: dict[str, list[tuple[str, int, int]]] = {}

    # -- databases -------------------------------------------------------------------------

    def check_registry(self) -> bool:
        """Read every row in one read transaction (a consistent snapshot that never blocks writers
        in WAL mode); returns False when the rows could not be read at all."""
        path = self.data.registry_db
        report = self.report
        if not path.is_file():
            report.add("registry_missing", "error", f"no {REGISTRY_DB}: not a wasmhost data directory", path)
            return False
        try:
            with _connect(path) as conn:
                conn.execute("BEGIN")
                try:
                    problems = _integrity(conn, self.quick)
                    for line in problems[:20]:
                        report.add("registry_integrity", "error", f"SQLite integrity check: {line}", path)
                    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
                    if app_id != reg.APPLICATION_ID:
                        report.add("registry_foreign", "error", "not a wasmhost registry (foreign application id)", path)
                        return False
                    functions = conn.execute("SELECT name, active_version FROM functions").fetchall()
                    versions = conn.execute(f"SELECT {', '.join(reg.VERSION_COLUMNS)} FROM versions").fetchall()
                finally:
                    conn.execute("COMMIT")
        except sqlite3.Error as exc:
            report.add("registry_unreadable", "error", f"cannot read {REGISTRY_DB}: {exc}", path)
            return False
        report.functions, report.versions = len(functions), len(versions)
        have: set[tuple[str, int]] = set()
        for row in versions:
            name, number, digest, size = row[0], row[1], row[2], row[3]
            have.add((name, number))
            try:
                reg.version_from_row((*row, 0, 0))  # the policy columns are the function's, not the row's
                if not DIGEST.fullmatch(digest):
                    raise ValueError(f"invalid digest {str(digest)[:80]!r}")
            except Exception as exc:  # noqa: BLE001 - any failure to parse is a corrupt row
                report.add("row_corrupt", "error", f"version row does not parse: {getattr(exc, 'message', exc)}",
                           path, name, number)
                continue
            self.referenced.setdefault(digest, []).append((name, number, size))
        names = {name for name, _ in functions}
        for name, active in functions:
            if (name, active) not in have:
                report.add("active_missing", "error",
                           f"function {name!r} points at version {active}, which does not exist", path, name, active)
        for name, number in sorted(have):
            if name not in names:
                report.add("dangling_version", "error",
                           f"version row {name!r} v{number} has no function row", path, name, number)
        return True

    def check_logs(self) -> None:
        path = self.data.logs_db
        if not path.is_file():
            return
        try:
            with _connect(path) as conn:
                for line in _integrity(conn, self.quick)[:20]:
                    self.report.add("logs_integrity", "error", f"SQLite integrity check: {line}", path)
        except sqlite3.Error as exc:
            self.report.add("logs_unreadable", "error", f"cannot read {LOGS_DB}: {exc}", path)

    # -- blobs -----------------------------------------------------------------------------

    def check_blobs(self) -> None:
        report = self.report
        seen: set[str] = set()
        orphans: list[tuple[Path, Finding]] = []
        for path in self.data.blob_files():
            if is_temp(path):
                finding = report.add("temp_file", "garbage", "blob temp file left by an interrupted write", path)
                if self.repair and (_age(path, self.now) or 0.0) >= self.min_age_s:
                    orphans.append((path, finding))
                continue
            digest = digest_of(path, BLOB_SUFFIX)
            if digest is None or path.parent.name != digest[:2] or not path.is_file():
                report.add("unexpected_file", "garbage", "not a blob name (left alone)", path)
                continue
            report.blobs += 1
            seen.add(digest)
            uses = self.referenced.get(digest, [])
            try:
                actual = _sha256_file(path)
            except OSError as exc:
                actual = None
                reason = f"unreadable: {exc.strerror}"
            else:
                reason = f"its sha256 is {actual[:16]}…"
            if actual != digest:
                if uses:
                    for name, number, _ in uses:
                        report.add("blob_corrupt", "error", f"module blob {digest[:16]}… is corrupt ({reason}); "
                                   "redeploy the module to repair it", path, name, number)
                else:
                    finding = report.add("blob_corrupt", "fault", f"unreferenced blob is corrupt ({reason})", path)
                    if self.repair:
                        orphans.append((path, finding))
                continue
            size = path.stat().st_size
            for name, number, row_size in uses:
                if row_size != size:
                    report.add("blob_size", "error", f"row says {row_size} bytes, blob has {size}", path, name, number)
            if not uses:
                finding = report.add("orphan_blob", "garbage", "no version references this blob", path)
                if self.repair and (_age(path, self.now) or 0.0) >= self.min_age_s:
                    orphans.append((path, finding))
        missing = set(self.referenced) - seen
        if missing:  # a function deleted (and its blob collected) since our snapshot is not missing
            missing &= self._referenced_now()
        for digest in sorted(missing):
            for name, number, _ in self.referenced[digest]:
                report.add("blob_missing", "error", f"module blob {digest[:16]}… is missing; redeploy the module",
                           self.data.blob(digest), name, number)
        if orphans and not any(f.kind == "registry_integrity" for f in report.findings):
            self._remove_unreferenced(orphans)  # a damaged database may have lost rows: delete nothing then

    def _referenced_now(self) -> set[str]:
        with _connect(self.data.registry_db) as conn:
            return {d for (d,) in conn.execute("SELECT DISTINCT digest FROM versions")}

    def _remove_unreferenced(self, candidates: list[tuple[Path, Finding]]) -> None:
        """Delete blob files under the registry's write lock, after re-reading the references,
        so that a deploy committing now (in any process) cannot lose its blob."""
        path = self.data.registry_db
        try:
            with _connect(path, write=True) as conn:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    referenced = {d for (d,) in conn.execute("SELECT DISTINCT digest FROM versions")}
                    for blob, finding in candidates:
                        if blob.name.removesuffix(".wasm") not in referenced:
                            finding.repaired = _unlink(blob)
                finally:
                    conn.execute("ROLLBACK")  # nothing was written: the lock was the point
        except sqlite3.Error as exc:
            self.report.add("repair_failed", "fault", f"could not lock the registry to delete blobs: {exc}", path)

    # -- artifacts -------------------------------------------------------------------------

    def check_artifacts(self) -> None:
        for fingerprint, path in self.data.artifact_files():
            self._check_artifact_file(path, fingerprint not in self.report.fingerprints)

    def _check_artifact_file(self, path: Path, foreign: bool) -> None:
        report = self.report
        if is_temp(path):
            finding = report.add("temp_file", "garbage", "artifact temp file left by an interrupted write", path)
            if self.repair and (_age(path, self.now) or 0.0) >= self.min_age_s:
                finding.repaired = _unlink(path)
            return
        digest = digest_of(path, ARTIFACT_SUFFIX) or digest_of(path, SUM_SUFFIX)
        if digest is None or path.parent.name != digest[:2]:
            finding = report.add("unexpected_file", "garbage", "not an artifact name in the artifact cache", path)
            self._drop(finding, path)
            return
        artifact = path.with_suffix(ARTIFACT_SUFFIX)
        sum_path = DataDir.sum_of(artifact)
        if path.suffix == SUM_SUFFIX:
            if path.exists() and not artifact.exists():  # (a repair above may have removed both)
                self._drop(report.add("stray_sum", "garbage", "checksum without its artifact", path), path)
            return
        report.artifacts += 1
        if foreign:
            finding = report.add("foreign_engine", "garbage", "artifact of another engine configuration "
                                 "(another wasmtime version or settings); this one never reads it", path)
            self._drop(finding, artifact, sum_path)
            return
        try:
            expected = sum_path.read_bytes()[:4096].decode("ascii", "replace").strip()
        except FileNotFoundError:
            expected = None
        try:
            actual = checksum(artifact)
        except FileNotFoundError:
            return  # removed meanwhile (the server rejected it, or GC)
        except OSError as exc:
            actual = f"unreadable: {exc.strerror}"
        if expected is None:
            finding = report.add("artifact_unsealed", "garbage",
                                 "artifact without its .sum (a write was interrupted); never loaded", artifact)
            self._drop(finding, artifact)
        elif expected != actual:
            finding = report.add("artifact_corrupt", "fault",
                                 f".sum says {expected[:60]!r}, the file is {actual[:60]!r}", artifact)
            self._drop(finding, sum_path, artifact)  # the sum first: a loader then ignores the artifact
        elif digest not in self.referenced:
            finding = report.add("orphan_artifact", "garbage", "no version uses this module", artifact)
            self._drop(finding, sum_path, artifact)

    def _drop(self, finding: Finding, *paths: Path) -> None:
        """Cache files: safe to delete at any time (recompiled from the blob on demand)."""
        if self.repair:
            finding.repaired = all([_unlink(p) for p in paths])


def fsck(data_dir: str | os.PathLike[str], *, repair: bool = False, min_age_s: float = DEFAULT_MIN_AGE_S,
         quick: bool = False, fingerprints: tuple[str, ...] | None = None) -> FsckReport:
    """Check a data directory and, with `repair`, fix what is safe to fix (see the module docstring).

    `min_age_s` protects blobs and temp files of writes in flight: only older ones are deleted.
    `fingerprints` are the engine fingerprints whose artifacts are current (default: computed
    from the WASMHOST_* settings, as `serve` would).
    """
    checker = _Checker(Path(data_dir), repair=repair, min_age_s=min_age_s, quick=quick, fingerprints=fingerprints)
    if checker.check_registry():
        checker.check_blobs()
        checker.check_artifacts()
    checker.check_logs()
    return checker.report
