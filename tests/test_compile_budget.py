"""Compiling within a budget (wasmhost/compiler.py).

A module over `isolate_compile_above_bytes` compiles in a child process that may take
at most `max_compile_seconds` and `max_compile_mb`. Over either, deploy answers 413
`too_large`, stores nothing, and the server goes on. Under it, the child's artifact
behaves exactly like an in-process compile: the same module, the same refusals.
"""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
import wasmtime

from wasmhost.compiler import CompileBudget, ModuleCompiler, child_environment
from wasmhost.errors import BadRequest, InvalidModule
from wasmhost.host import Host
from wasmhost.models import Request
from wasmhost.settings import Settings

from .conftest import small_settings
from .server import Server
from .test_hostile_http import many_functions

MIB = 1024 * 1024
IN_PROCESS = CompileBudget(seconds=60, memory_mb=4096, isolate_above_bytes=1 << 40)
IN_CHILD = CompileBudget(seconds=60, memory_mb=4096, isolate_above_bytes=0)


def _outcome(compiler: ModuleCompiler, wasm_bytes: bytes) -> tuple[str, object]:
    try:
        module = compiler.compile(wasm_bytes)
    except InvalidModule as exc:
        return "invalid", exc.message
    return "ok", ([(i.module, i.name) for i in module.imports], [e.name for e in module.exports])


@pytest.mark.parametrize("case", ["hello_handler", "hello_wagi", "garbage", "memory-over-limit",
                                  "exports-35000"])
def test_a_child_compile_gives_what_an_in_process_compile_gives(host: Host, wasm, case: str) -> None:
    if case == "garbage":
        module = b"\0asm\x01\0\0\0\x01\x05garbage"
    elif case == "memory-over-limit":  # 256 MiB > max_memory_mb=128: refused before compiling
        module = bytes(wasmtime.wat2wasm("(module (memory 4096))"))
    elif case == "exports-35000":  # refused by the pooling allocator: in Module() here, in deserialize there
        module = bytes(many_functions(35_000, exported=True))
    else:
        module = wasm(case)
    here = _outcome(ModuleCompiler(host.wasm, IN_PROCESS), module)
    there = _outcome(ModuleCompiler(host.wasm, IN_CHILD), module)
    assert here == there
    expected = "ok" if case.startswith("hello") else "invalid"
    assert here[0] == expected, here


def test_modules_compiled_in_a_child_run_and_their_artifacts_serve_restarts(tmp_path: Path, wasm) -> None:
    settings = small_settings(tmp_path / "data", isolate_compile_above_bytes=0)
    with Host(settings) as host:
        host.deploy("hello", wasm("hello_handler"))
        result = host.invoke("hello", Request())
        assert result.response is not None and result.response.body == b"Hello, world!\n", result.error
    with Host(settings) as host:  # a new process's cache: the child's artifact from disk
        result = host.invoke("hello", Request())
        assert result.response is not None and result.response.body == b"Hello, world!\n", result.error
        assert result.tier == "disk"
        assert host.cache.stats.disk == 1 and host.cache.stats.compile == 0


def test_the_compiler_child_gets_none_of_the_servers_environment() -> None:
    assert child_environment().keys() == {"PATH", "LC_ALL"}


@pytest.fixture(params=["seconds", "memory"])
def tight_server(request, tmp_path: Path, modules_dir: Path):
    env = ({"WASMHOST_MAX_COMPILE_SECONDS": "1", "WASMHOST_MAX_COMPILE_MB": "4096"} if request.param == "seconds"
           else {"WASMHOST_MAX_COMPILE_SECONDS": "120", "WASMHOST_MAX_COMPILE_MB": "256"})
    with Server(tmp_path / "data", env=env) as srv:
        assert srv.deploy("good", (modules_dir / "hello_handler.wasm").read_bytes()).status_code == 201
        yield request.param, srv
        assert srv.proc is not None and srv.proc.poll() is None, "the server died"
        assert "Traceback" not in srv.log(), srv.log()


@pytest.mark.slow
def test_a_module_over_the_compile_budget_is_refused_and_nothing_is_stored(tight_server) -> None:
    """200,000 functions (3.6 MB) take ~8 s and ~1.2 GiB to compile here: over both budgets."""
    kind, server = tight_server
    module = bytes(many_functions(200_000))
    blobs = server.data_dir / "blobs"
    stored_before = sorted(p.name for p in blobs.rglob("*") if p.is_file())
    r = server.deploy("costly", module)
    assert r.status_code == 413, r.text[:500]
    error = r.json()["error"]
    assert error["code"] == "too_large"
    if kind == "seconds":
        assert error["compile_seconds"] == 1 and "took longer than this server's limit of 1 s" in error["message"]
    else:
        assert error["compile_mb"] == 256 and "more than this server's limit of 256 MiB" in error["message"]
    assert server.client.get("/fn/costly").status_code == 404
    assert sorted(p.name for p in blobs.rglob("*") if p.is_file()) == stored_before
    assert server.client.get("/fn/good").content == b"Hello, world!\n"
    # The server still compiles in children: a module just over the isolation size deploys.
    assert server.deploy("fine", bytes(many_functions(20_000))).status_code == 201
    assert server.client.get("/fn/fine").content == b"Hello, world!\n"


def test_compile_budget_settings_are_checked() -> None:
    assert Settings.from_env({}).max_compile_seconds == 30
    for env in ({"WASMHOST_MAX_COMPILE_SECONDS": "0"}, {"WASMHOST_MAX_COMPILE_MB": "32"},
                {"WASMHOST_ISOLATE_COMPILE_ABOVE_BYTES": "-1"}):
        with pytest.raises(BadRequest):
            Settings.from_env(env)


def test_the_server_answers_calls_while_a_child_compiles(tmp_path: Path, modules_dir: Path) -> None:
    with Server(tmp_path / "data") as server:
        assert server.deploy("good", (modules_dir / "hello_handler.wasm").read_bytes()).status_code == 201
        module = bytes(many_functions(30_000))
        with httpx.Client(base_url=server.url, timeout=60) as other:
            result: list[httpx.Response] = []
            uploader = threading.Thread(target=lambda: result.append(server.deploy("big", module)))
            uploader.start()
            answered = 0
            while uploader.is_alive():
                assert other.get("/fn/good").status_code == 200
                answered += 1
            uploader.join()
        assert result[0].status_code == 201, result[0].text[:300]
        assert answered >= 1  # answered while the child compiled (the upload thread was alive)
