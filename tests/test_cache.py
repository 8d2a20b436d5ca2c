"""The three cache tiers: memory, disk (after a restart), compile (last resort)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from wasmhost.host import Host
from wasmhost.models import Request

from .conftest import ROOT, small_settings

HELLO = Request(path="/")


def test_deploy_precompiles_so_first_call_is_memory(host: Host, wasm) -> None:
    host.deploy("hello", wasm("hello_handler"))
    assert host.cache.stats.compile == 0
    inv = host.invoke("hello", HELLO)
    assert inv.tier == "memory"
    assert host.cache.artifact_path(host.registry.resolve("hello").digest).exists()


def test_restart_in_process_serves_from_disk_without_compiling(tmp_path: Path, wasm) -> None:
    settings = small_settings(tmp_path)
    with Host(settings) as first:
        first.deploy("hello", wasm("hello_handler"))
    with Host(settings) as second:
        inv = second.invoke("hello", HELLO)
        assert inv.ok and inv.tier == "disk"
        assert second.cache.stats.compile == 0 and second.cache.stats.compile_seconds == 0
        assert second.invoke("hello", HELLO).tier == "memory"


RESTART_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from tests.conftest import small_settings
from wasmhost.host import Host
from wasmhost.models import Request
with Host(small_settings(Path(sys.argv[2]))) as host:
    calls = [host.invoke(name, Request(path="/")) for name in ("hello", "hello-wagi", "hello")]
    print(json.dumps({"tiers": [c.tier for c in calls], "ok": [c.ok for c in calls],
                      "compiles": host.cache.stats.compile,
                      "bodies": [c.response.body.decode() for c in calls]}))
"""


def test_restart_in_a_new_process_serves_from_disk(tmp_path: Path, wasm) -> None:
    with Host(small_settings(tmp_path)) as host:
        host.deploy("hello", wasm("hello_handler"))
        host.deploy("hello-wagi", wasm("hello_wagi"))
    out = subprocess.run([sys.executable, "-c", RESTART_SCRIPT, str(ROOT), str(tmp_path)],
                         capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["tiers"] == ["disk", "disk", "memory"]
    assert result["ok"] == [True, True, True]
    assert result["compiles"] == 0
    assert result["bodies"][1] == "Hello from WAGI\n"


def corrupt_and_reload(tmp_path: Path, wasm, damage) -> Host:
    settings = small_settings(tmp_path)
    with Host(settings) as first:
        first.deploy("hello", wasm("hello_handler"))
        artifact = first.cache.artifact_path(first.registry.resolve("hello").digest)
    damage(artifact)
    return Host(settings)


def _flip_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 16):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_corrupted_artifact_is_recompiled(tmp_path: Path, wasm) -> None:
    for damage in (_flip_bytes,
                   lambda p: p.write_bytes(p.read_bytes()[: 100]),
                   lambda p: p.write_bytes(b"garbage"),
                   lambda p: p.with_suffix(".sum").unlink()):
        case = tmp_path / str(id(damage))
        with corrupt_and_reload(case, wasm, damage) as host:
            inv = host.invoke("hello", HELLO)
            assert inv.ok, inv.error
            assert inv.tier == "compile"
            assert inv.response.body == b"Hello, world!\n"
            # The rewritten artifact is good: the next restart loads it from disk.
        with Host(small_settings(case)) as again:
            assert again.invoke("hello", HELLO).tier == "disk"


def test_artifact_with_valid_checksum_but_from_another_engine_is_refused(tmp_path: Path, wasm) -> None:
    """An artifact compiled by an engine with other settings, planted under our
    fingerprint with a matching checksum, must be refused by wasmtime's own check."""
    import wasmtime

    from wasmhost.store.files import checksum as _checksum
    with corrupt_and_reload(tmp_path, wasm, lambda p: None) as host:
        digest = host.registry.resolve("hello").digest
        path = host.cache.artifact_path(digest)
        other = wasmtime.Engine(wasmtime.Config())  # no fuel, no epochs
        path.write_bytes(wasmtime.Module(other, wasm("hello_handler")).serialize())
        path.with_suffix(".sum").write_text(_checksum(path))
        inv = host.invoke("hello", HELLO)
        assert inv.ok and inv.tier == "compile"
        assert host.cache.stats.corrupt_artifacts == 1


def test_lru_is_bounded(tmp_path: Path, wasm) -> None:
    with Host(small_settings(tmp_path, cache_max_modules=2)) as host:
        for name in ("hello_handler", "hello_wagi", "echo_handler"):
            host.deploy(name.replace("_", "-"), wasm(name))
        assert len(host.cache) == 2
        assert host.cache.stats.evictions == 1
        assert host.invoke("hello-handler", HELLO).tier == "disk"  # evicted first, reloaded from disk
        assert len(host.cache) == 2


def test_missing_artifact_directory_recompiles(tmp_path: Path, wasm) -> None:
    import shutil
    settings = small_settings(tmp_path)
    with Host(settings) as first:
        first.deploy("hello", wasm("hello_handler"))
    shutil.rmtree(tmp_path / "artifacts")
    with Host(settings) as host:
        inv = host.invoke("hello", HELLO)
        assert inv.ok and inv.tier == "compile"
