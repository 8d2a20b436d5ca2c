"""`wasmhost fsck` against real data directories damaged on purpose: each damage is detected,
the safe ones are repaired, and nothing a version references is ever deleted."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from pathlib import Path

import pytest

from tests.conftest import small_settings
from wasmhost.cli import main
from wasmhost.fsck import FsckReport, fsck
from wasmhost.host import Host
from wasmhost.models import Request
from wasmhost.store.layout import REGISTRY_DB as DB_FILE
from wasmhost.store.registry import Registry

OLD = time.time() - 7200  # older than the default --min-age


@pytest.fixture
def setup(tmp_path: Path, wasm):
    """A host with two functions (one module each) and the fsck call bound to its engine."""
    settings = small_settings(tmp_path / "data")
    host = Host(settings)
    hello, echo = wasm("hello_handler"), wasm("echo_handler")
    host.deploy("hello", hello)
    host.deploy("echo", echo)
    fingerprints = (host.wasm.fingerprint,)

    def check(**kw) -> FsckReport:
        return fsck(settings.data_dir, fingerprints=fingerprints, **kw)

    yield host, check, hashlib.sha256(hello).hexdigest(), hashlib.sha256(echo).hexdigest()
    host.close()


def kinds(report: FsckReport, **filters) -> list[str]:
    return [f.kind for f in report.findings if all(getattr(f, k) == v for k, v in filters.items())]


def test_clean_directory_has_no_findings(setup) -> None:
    _, check, _, _ = setup
    report = check()
    assert report.ok and report.findings == []
    assert (report.functions, report.versions, report.blobs, report.artifacts) == (2, 2, 2, 2)


def test_corrupt_referenced_blob_is_an_error_naming_the_version_and_never_deleted(setup) -> None:
    host, check, digest, _ = setup
    path = host.registry.blob_path(digest)
    os.chmod(path, 0o644)
    path.write_bytes(b"\0asm" + b"x" * (path.stat().st_size - 4))  # same size, other bytes
    os.utime(path, (OLD, OLD))
    report = check(repair=True, min_age_s=0)
    [finding] = report.findings
    assert (finding.kind, finding.severity, finding.function, finding.version) == ("blob_corrupt", "error", "hello", 1)
    assert not finding.repaired and path.exists() and not report.ok


def test_put_blob_rewrites_a_damaged_blob_of_the_same_size(setup, wasm) -> None:
    host, check, digest, _ = setup
    path = host.registry.blob_path(digest)
    os.chmod(path, 0o644)
    path.write_bytes(b"\0" * path.stat().st_size)
    host.deploy("hello", wasm("hello_handler"))  # before the fix: trusted by size, v2 pointed at zeros
    assert path.read_bytes() == wasm("hello_handler")
    assert check().ok


def test_missing_referenced_blob_is_an_error_naming_every_version(setup) -> None:
    host, check, digest, _ = setup
    host.update("hello", config={"A": "1"})  # v2 shares the digest
    host.registry.blob_path(digest).unlink()
    report = check(repair=True)
    assert sorted((f.kind, f.function, f.version) for f in report.remaining) == [
        ("blob_missing", "hello", 1), ("blob_missing", "hello", 2)]


def test_truncated_artifact_is_a_fault_repaired_and_then_recompiled(setup) -> None:
    host, check, digest, _ = setup
    artifact = host.cache.artifact_path(digest)
    with open(artifact, "r+b") as f:
        f.truncate(artifact.stat().st_size // 2)
    report = check()
    assert kinds(report) == ["artifact_corrupt"] and not report.ok
    report = check(repair=True)
    assert report.ok and report.findings[0].repaired
    assert not artifact.exists() and not artifact.with_suffix(".sum").exists()
    assert check().findings == []
    host.cache.clear_memory()
    invocation = host.invoke("hello", Request())
    assert invocation.ok and invocation.tier == "compile"
    assert check().findings == []  # the recompiled artifact is sealed again


def test_unsealed_and_stray_cache_files_are_garbage_and_removed(setup) -> None:
    host, check, digest, other = setup
    host.cache.artifact_path(digest).with_suffix(".sum").unlink()  # crash between artifact and sum
    host.cache.artifact_path(other).unlink()  # sum left without its artifact
    report = check()
    assert sorted(kinds(report, severity="garbage")) == ["artifact_unsealed", "stray_sum"] and report.ok
    assert all(f.repaired for f in check(repair=True).findings)
    assert check().findings == []


def test_temp_files_are_removed_only_when_old(setup, tmp_path: Path) -> None:
    host, check, digest, _ = setup
    blob_tmp = host.registry.blob_path(digest).parent / ".tmp-123-456-abcdef"
    artifact_tmp = host.cache.artifact_path(digest).parent / ".tmp-xyz.cwasm"
    for path in (blob_tmp, artifact_tmp):
        path.write_bytes(b"\0asm half")
    report = check(repair=True)  # fresh: could be a write in flight
    assert kinds(report) == ["temp_file", "temp_file"] and report.ok and not any(f.repaired for f in report.findings)
    for path in (blob_tmp, artifact_tmp):
        os.utime(path, (OLD, OLD))
    assert all(f.repaired for f in check(repair=True).findings)
    assert not blob_tmp.exists() and not artifact_tmp.exists()


def test_orphans_are_garbage_removed_after_the_gc_age(setup, wasm) -> None:
    host, check, digest, _ = setup
    host.delete("hello")  # its blob and artifact are now unreferenced
    orphan = host.registry.put_blob(wasm("cpu_loop"))  # a crash between blob and row
    report = check(repair=True)
    assert sorted(kinds(report)) == ["orphan_artifact", "orphan_blob", "orphan_blob"]
    assert [f.kind for f in report.findings if f.repaired] == ["orphan_artifact"]  # the cache goes at once
    for d in (digest, orphan):
        os.utime(host.registry.blob_path(d), (OLD, OLD))
    report = check(repair=True)
    assert kinds(report) == ["orphan_blob", "orphan_blob"] and all(f.repaired for f in report.findings)
    assert check().findings == []
    assert host.invoke("echo", Request(body=b"hi")).ok


def test_unreferenced_blob_with_wrong_bytes_is_a_fault_and_repaired(setup) -> None:
    host, check, _, _ = setup
    fake = "ab" + "0" * 62
    path = host.registry.blob_path(fake)
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"not the bytes of that digest")
    report = check(repair=True)  # a corrupt file is removed whatever its age
    assert [(f.kind, f.severity, f.repaired) for f in report.findings] == [("blob_corrupt", "fault", True)]
    assert report.ok and not path.exists()


def test_foreign_engine_artifacts_are_garbage_and_removed(setup) -> None:
    host, check, digest, _ = setup
    foreign = host.data.artifacts_of("0123456789abcdef") / digest[:2]
    foreign.mkdir(parents=True)
    (foreign / f"{digest}.cwasm").write_bytes(b"old engine")
    (foreign / f"{digest}.sum").write_bytes(b"10:abc")
    report = check(repair=True)
    assert kinds(report) == ["foreign_engine"] and report.findings[0].repaired and report.ok
    assert list(foreign.iterdir()) == []


def test_dangling_rows_and_missing_active_version_are_errors(setup) -> None:
    host, check, _, _ = setup
    with sqlite3.connect(host.settings.data_dir / DB_FILE) as conn:
        conn.execute("UPDATE functions SET active_version = 9 WHERE name = 'hello'")
        conn.execute("DELETE FROM functions WHERE name = 'echo'")
    report = check(repair=True)
    assert sorted((f.kind, f.function, f.version) for f in report.remaining) == [
        ("active_missing", "hello", 9), ("dangling_version", "echo", 1)]


def test_damaged_database_is_reported_and_blobs_are_left_alone(tmp_path: Path, wasm) -> None:
    data = tmp_path / "data"
    with Registry(data) as reg:
        digest = reg.put_blob(wasm("hello_handler"))
        for i in range(300):  # enough rows for several pages
            reg.create_version(f"f{i}", digest=digest, size=len(wasm("hello_handler")), abi="handler",
                               imports=[], exports=[], limits=small_settings(data).default_limits(), config={})
    db = data / DB_FILE
    raw = bytearray(db.read_bytes())
    page = 4096
    raw[3 * page:3 * page + 200] = os.urandom(200)
    db.write_bytes(bytes(raw))
    os.utime(reg.blob_path(digest), (OLD, OLD))
    report = fsck(data, repair=True, min_age_s=0, fingerprints=())
    assert not report.ok
    assert {f.kind for f in report.remaining} & {"registry_integrity", "registry_unreadable"}
    assert reg.blob_path(digest).exists()  # a damaged database may have lost rows: no blob deleted


def test_cli_exit_codes_and_json(setup, capsys, monkeypatch) -> None:
    host, _, digest, _ = setup
    data = str(host.settings.data_dir)
    monkeypatch.setenv("WASMHOST_DATA", data)
    # the CLI computes the fingerprint from WASMHOST_* settings; match the test host's settings
    for key, value in {"MAX_MEMORY_MB": "128", "MAX_CONCURRENCY": "4", "POOL_INSTANCES": "16"}.items():
        monkeypatch.setenv("WASMHOST_" + key, value)
    assert main(["fsck", "--data", data]) == 0
    assert "OK" in capsys.readouterr().out
    artifact = host.cache.artifact_path(digest)
    artifact.write_bytes(b"garbage")  # read-write: written by the cache, not read-only like blobs
    assert main(["fsck", "--data", data, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["findings"][0]["kind"] == "artifact_corrupt"
    assert main(["fsck", "--data", data, "--repair"]) == 0
    assert "1 repaired, OK" in capsys.readouterr().out
    assert main(["fsck", "--data", data, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["findings"] == []
    assert main(["fsck", "--data", str(Path(data) / "nope")]) == 1


def test_store_artifact_removes_a_stale_sum_first(setup) -> None:
    host, check, digest, _ = setup
    artifact = host.cache.artifact_path(digest)
    artifact.unlink()  # a sum without its artifact (an interrupted removal)
    artifact.with_suffix(".sum").write_bytes(b"1:ffff")
    module = host.cache.load_artifact(digest)
    assert module is None
    seen: list[bool] = []
    original = host.cache.store_artifact

    class Killed(BaseException):
        """A kill -9: nothing of ours runs after it (a failed write, an OSError, is cleaned up)."""

    def crash_before_the_sum(d: str, m) -> None:  # what a kill -9 between the two writes leaves
        import wasmhost.store.artifacts as artifacts_mod
        real = artifacts_mod.write_atomic

        def write(path: Path, data: bytes, mode: int = 0o644) -> None:
            if path.suffix == ".sum":
                seen.append(path.exists())
                raise Killed
            real(path, data, mode)

        artifacts_mod.write_atomic = write
        try:
            original(d, m)
        except Killed:
            pass
        finally:
            artifacts_mod.write_atomic = real

    from wasmhost.compiler import compile_module
    crash_before_the_sum(digest, compile_module(host.wasm, host.registry.read_blob(digest)))
    assert seen == [False]  # the stale sum was gone before the new artifact landed
    assert kinds(check()) == ["artifact_unsealed"]
