"""The Go guest SDK (guest-sdk/go), through its committed example modules/wasm/go-hello.wasm.

No toolchain needed here: modules/go/build.sh builds the module and runs the SDK's `go test`
codec tests. A Go reactor imports WASI (the Go runtime needs it) and exports `_initialize`,
which the host calls before wasmhost_alloc: this checks that path end to end.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import wasmtime

from tests.conftest import small_settings
from tests.server import Server
from wasmhost.host import Host
from wasmhost.models import Request

ROOT = Path(__file__).resolve().parent.parent
WASM_DIR = ROOT / "modules" / "wasm"
TEXT = "text/plain; charset=utf-8"


def module(name: str) -> bytes:
    return (WASM_DIR / f"go-{name}.wasm").read_bytes()


def test_every_example_is_committed():
    built = sorted(p.name for p in WASM_DIR.glob("go-*.wasm"))
    sources = sorted(f"go-{p.parent.name}.wasm" for p in (ROOT / "modules" / "go").glob("*/go.mod"))
    assert built == sources == ["go-hello.wasm"]


def test_imports_and_exports():
    m = wasmtime.Module(wasmtime.Engine(), module("hello"))
    imports = {(i.module, i.name) for i in m.imports}
    assert ("wasmhost", "log") in imports
    assert {mod for mod, _ in imports} == {"wasmhost", "wasi_snapshot_preview1"}
    exports = {e.name for e in m.exports}
    assert {"memory", "wasmhost_alloc", "wasmhost_handle", "_initialize"} <= exports


@pytest.fixture
def gohost(tmp_path):
    with Host(small_settings(tmp_path / "data")) as h:
        h.deploy("hello", module("hello"))
        yield h


def test_hello(gohost):
    inv = gohost.invoke("hello", Request(method="POST", path="/a%20b/ü", query="x=1",
                                         headers=(("x-r", "1"), ("x-r", "2")), body=bytes(range(256))))
    assert inv.error is None, inv.error
    assert inv.response.status == 200
    assert inv.response.headers == (("content-type", TEXT),)
    assert inv.response.body == b"Hello from Go!\n"
    assert inv.logs == ["hello called: POST /a%20b/ü"]
    # Every call is a fresh instance (and a fresh _initialize): same answer again.
    for method in ("GET", "DELETE"):
        again = gohost.invoke("hello", Request(method=method, path="/"))
        assert again.error is None, again.error
        assert again.response.body == b"Hello from Go!\n"
        assert again.logs == [f"hello called: {method} /"]


def test_over_real_http(tmp_path):
    with Server(tmp_path / "data") as srv:
        assert srv.deploy("go-hello", module("hello")).status_code == 201
        r = srv.client.get("/fn/go-hello/x/y?z=1")
        assert r.status_code == 200
        assert r.headers["content-type"] == TEXT
        assert r.text == "Hello from Go!\n"
        deadline = time.monotonic() + 10
        logs: list = []
        while time.monotonic() < deadline:
            logs = srv.client.get("/v1/functions/go-hello/logs").json()["invocations"]
            if logs:
                break
            time.sleep(0.05)
        assert logs and logs[0]["logs"] == ["hello called: GET /x/y"]
