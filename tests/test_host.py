"""Host API: deploy validation, versions, rollback, delete, limits and config."""

from __future__ import annotations

from pathlib import Path

import pytest

from wasmhost.errors import BadRequest, InvalidModule, NotFound, TooLarge
from wasmhost.host import Host
from wasmhost.models import Request

from .conftest import small_settings

HELLO = Request(path="/")


@pytest.mark.parametrize("module", ["hostile/invalid_bytes", "hostile/truncated", "hostile/no_interface"])
def test_invalid_modules_are_refused_before_anything_is_stored(host: Host, wasm, module) -> None:
    with pytest.raises(InvalidModule) as info:
        host.deploy("bad", wasm(module))
    assert info.value.http_status == 400
    assert host.list() == []
    assert not any((host.settings.data_dir / "blobs").rglob("*.wasm"))


def test_unknown_import_is_named(host: Host, wasm) -> None:
    with pytest.raises(InvalidModule) as info:
        host.deploy("missiles", wasm("hostile/unknown_import"))
    assert "env.launch_missiles" in info.value.message
    assert info.value.details["unsupported_imports"] == ["env.launch_missiles"]
    assert host.list() == []


def test_huge_initial_memory_is_refused_at_deploy(host: Host, wasm) -> None:
    with pytest.raises(InvalidModule) as info:
        host.deploy("huge", wasm("hostile/huge_initial_memory"))
    assert "MiB" in info.value.message
    assert host.list() == []


def test_empty_and_oversized_modules(host: Host, wasm) -> None:
    with pytest.raises(InvalidModule):
        host.deploy("empty", b"")
    with pytest.raises(TooLarge) as info:
        host.deploy("big", b"\0asm" + b"\0" * host.settings.max_module_bytes)
    assert info.value.http_status == 413
    assert host.list() == []


@pytest.mark.parametrize("name", ["", "Hello", "-x", "a" * 64, "a_b", "a/b", "ä", "a.b"])
def test_bad_names_state_the_rule(host: Host, wasm, name) -> None:
    with pytest.raises(BadRequest) as info:
        host.deploy(name, wasm("hello_handler"))
    assert "a-z" in info.value.message


@pytest.mark.parametrize("limits", [{"fuel": 0}, {"fuel": -5}, {"timeout_ms": "soon"},
                                    {"memory_mb": 10_000}, {"fuel": 10**12}, {"cpu": 1}])
def test_bad_limits(host: Host, wasm, limits) -> None:
    with pytest.raises(BadRequest):
        host.deploy("hello", wasm("hello_handler"), limits=limits)
    assert host.list() == []


@pytest.mark.parametrize("config", [{"": "x"}, {"A=B": "x"}, {"K": "a\x00b"}, {"K": ["list"]},
                                    {f"K{i}": "v" for i in range(300)}])
def test_bad_config(host: Host, wasm, config) -> None:
    with pytest.raises(BadRequest):
        host.deploy("hello", wasm("hello_handler"), config=config)


def test_versions_update_rollback_and_pinned_calls(host: Host, wasm) -> None:
    d1 = host.deploy("fn", wasm("hello_handler"), limits={"fuel": 1000})
    assert d1.version.version == 1 and d1.version.abi == "handler"
    assert d1.version.limits.fuel == 1000
    d2 = host.deploy("fn", wasm("hello_wagi"))
    assert d2.version.version == 2 and d2.version.abi == "wagi"
    assert host.invoke("fn", HELLO).response.body == b"Hello from WAGI\n"
    assert host.invoke("fn", HELLO, version=1).response.body == b"Hello, world!\n"

    v3 = host.update("fn", limits={"fuel": 5000}, config={"A": "1"})
    assert v3.version == 3 and v3.digest == d2.version.digest
    assert v3.limits.fuel == 5000 and v3.config == {"A": "1"}
    assert v3.limits.timeout_ms == d2.version.limits.timeout_ms

    back = host.rollback("fn", 1)
    assert back.version == 1
    assert host.invoke("fn", HELLO).response.body == b"Hello, world!\n"
    info = host.get("fn")
    assert info.active.version == 1 and [v.version for v in info.versions] == [1, 2, 3]
    with pytest.raises(NotFound):
        host.rollback("fn", 99)
    with pytest.raises(NotFound):
        host.invoke("fn", HELLO, version=42)


def test_update_refuses_limits_above_maxima(host: Host, wasm) -> None:
    host.deploy("fn", wasm("hello_handler"))
    with pytest.raises(BadRequest):
        host.update("fn", limits={"memory_mb": 100_000})
    assert host.get("fn").active.version == 1


def test_update_and_set_policy_must_name_something(host: Host, wasm) -> None:
    host.deploy("fn", wasm("hello_handler"))
    with pytest.raises(BadRequest, match="nothing to update"):
        host.update("fn")
    with pytest.raises(BadRequest, match="nothing to change"):
        host.set_policy("fn")
    for bad in ({"private": 1}, {"concurrency": -1}, {"concurrency": True}, {"concurrency": 10**6}):
        with pytest.raises(BadRequest):
            host.set_policy("fn", **bad)
    assert [v.version for v in host.get("fn").versions] == [1]


def test_delete(host: Host, wasm) -> None:
    host.deploy("gone", wasm("hello_handler"))
    host.delete("gone")
    with pytest.raises(NotFound):
        host.invoke("gone", HELLO)
    with pytest.raises(NotFound):
        host.delete("gone")
    assert host.list() == []


def test_request_body_over_the_limit(host: Host, wasm) -> None:
    host.deploy("echo", wasm("echo_handler"))
    with pytest.raises(TooLarge):
        host.invoke("echo", Request(method="POST", body=b"x" * (host.settings.max_request_bytes + 1)))
    assert host.invoke("echo", Request(method="POST", body=b"x" * 1000)).ok


def test_same_bytes_twice_reuse_the_artifact(host: Host, wasm) -> None:
    first = host.deploy("a", wasm("hello_handler"))
    second = host.deploy("b", wasm("hello_handler"))
    assert first.tier == "compile" and first.compile_seconds > 0
    assert second.tier == "disk" and second.compile_seconds == 0.0
    assert first.version.digest == second.version.digest


def test_list_and_get(host: Host, wasm) -> None:
    host.deploy("b-fn", wasm("hello_handler"))
    host.deploy("a-fn", wasm("hello_wagi"))
    assert [f.name for f in host.list()] == ["a-fn", "b-fn"]
    info = host.get("a-fn").to_dict()
    assert info["active"]["abi"] == "wagi"
    assert "wasi_snapshot_preview1.fd_write" in info["active"]["imports"]
    with pytest.raises(NotFound):
        host.get("nope")


def test_settings_from_environment(tmp_path: Path) -> None:
    from wasmhost.settings import Settings
    s = Settings.from_env({"WASMHOST_DATA": str(tmp_path), "WASMHOST_DEFAULT_FUEL": "1_000",
                           "WASMHOST_POOLING": "false"})
    assert s.data_dir == tmp_path and s.default_fuel == 1000 and s.pooling is False
    with pytest.raises(BadRequest):
        Settings.from_env({"WASMHOST_MAX_FUEL": "lots"})
    with pytest.raises(BadRequest):
        Settings.from_env({"WASMHOST_DEFAULT_FUEL": "10", "WASMHOST_MAX_FUEL": "5"})


def test_default_allocator_works_too(tmp_path: Path, wasm) -> None:
    with Host(small_settings(tmp_path, pooling=False)) as host:
        assert host.wasm.pooling is False
        host.deploy("hello", wasm("hello_handler"))
        assert host.invoke("hello", HELLO).response.body == b"Hello, world!\n"


def test_engine_falls_back_when_the_pool_cannot_be_reserved() -> None:
    from wasmhost.engine import EngineConfig, create_engine
    engine = create_engine(EngineConfig(max_wasm_stack=512 * 1024, pooling=True,
                                        pool_instances=50_000_000, max_memory_bytes=512 << 20))
    try:
        assert engine.pooling is False
    finally:
        engine.close()


def test_fingerprint_covers_codegen_settings() -> None:
    from wasmhost.engine import EngineConfig
    base = EngineConfig(max_wasm_stack=512 * 1024, pooling=True, pool_instances=8, max_memory_bytes=1 << 26)
    fp = lambda cfg, pooled=True: __import__("wasmhost.engine").engine.fingerprint_of(cfg.codegen_settings(pooled))  # noqa: E731
    assert fp(base) == fp(EngineConfig(max_wasm_stack=512 * 1024, pooling=True, pool_instances=99,
                                       max_memory_bytes=1 << 26))  # pool size does not change code
    assert fp(base) != fp(EngineConfig(max_wasm_stack=512 * 1024, pooling=True, pool_instances=8,
                                       max_memory_bytes=1 << 26, opt_level="none"))
    assert fp(base) != fp(EngineConfig(max_wasm_stack=512 * 1024, pooling=True, pool_instances=8,
                                       max_memory_bytes=1 << 26, nan_canonicalization=True))
    assert fp(base) != fp(base, pooled=False)


def test_garbage_collection_keeps_what_is_referenced(host: Host, wasm) -> None:
    import os
    import time as _time
    host.deploy("keep", wasm("hello_handler"))
    host.deploy("gone", wasm("hello_wagi"))
    kept = host.registry.resolve("keep").digest
    gone = host.registry.resolve("gone").digest
    host.delete("gone")
    assert host.collect_garbage(min_age_s=3600) == {"blobs": 0, "artifact_files": 0}  # too young to go
    old = _time.time() - 7200
    data = host.settings.data_dir
    for path in list(data.rglob("*.wasm")) + list(data.rglob("*.cwasm")) + list(data.rglob("*.sum")):
        os.utime(path, (old, old))
    tmp = host.cache.artifact_path(kept).parent / ".tmp-crashed.cwasm"
    tmp.write_bytes(b"half")
    os.utime(tmp, (old, old))
    removed = host.collect_garbage(min_age_s=3600)
    assert removed == {"blobs": 1, "artifact_files": 3}  # gone's .cwasm and .sum, and the temp file
    assert not host.registry.blob_path(gone).exists() and not host.cache.artifact_path(gone).exists()
    assert host.registry.blob_path(kept).exists() and host.cache.artifact_path(kept).exists()
    host.cache.clear_memory()
    assert host.invoke("keep", HELLO).response.body == b"Hello, world!\n"
