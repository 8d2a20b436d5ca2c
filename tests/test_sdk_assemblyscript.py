"""The AssemblyScript guest SDK (guest-sdk/assemblyscript), through its committed examples.

No toolchain needed: these tests run the committed modules/wasm/as-*.wasm (built by
modules/assemblyscript/build.sh, which also runs the SDK's own codec tests under node).
`as-echo` is the codec test from the host's side: it answers with every request field
exactly as the SDK decoded it.
"""

from __future__ import annotations

import json
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
SOURCES = ROOT / "modules" / "assemblyscript"
TEXT = "text/plain; charset=utf-8"
EXAMPLES = ("hello", "echo")


def module(name: str) -> bytes:
    return (WASM_DIR / f"as-{name}.wasm").read_bytes()


def fnv1a32(data: bytes) -> str:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return f"{h:08x}"


@pytest.fixture
def ashost(tmp_path):
    with Host(small_settings(tmp_path / "data")) as h:
        h.deploy("hello", module("hello"))
        h.deploy("echo", module("echo"), config={"GREETING": "héllo wörld ✓", "EMPTY": "", "K": "v"})
        yield h


def echo(host: Host, **fields) -> tuple[object, list[str]]:
    inv = host.invoke("echo", Request(**fields))
    assert inv.error is None, inv.error
    assert inv.response.headers[0] == ("content-type", TEXT)
    text = inv.response.body.decode("utf-8")
    assert text.endswith("\n")
    return inv.response, text[:-1].split("\n")


def test_every_example_is_committed_and_built():
    built = sorted(p.name for p in WASM_DIR.glob("as-*.wasm"))
    sources = sorted(f"as-{p.parent.name}.wasm" for p in SOURCES.glob("*/index.ts"))
    assert built == sources == sorted(f"as-{n}.wasm" for n in EXAMPLES)


@pytest.mark.parametrize("name", EXAMPLES)
def test_imports_and_exports(name):
    m = wasmtime.Module(wasmtime.Engine(), module(name))
    imports = {(i.module, i.name) for i in m.imports}
    assert imports <= {("wasmhost", "log")}  # no env.abort, no WASI: the fast path
    exports = {e.name: e.type for e in m.exports}
    assert {"memory", "wasmhost_alloc", "wasmhost_handle"} <= set(exports)
    assert len(module(name)) < 32 * 1024


def test_hello(ashost):
    inv = ashost.invoke("hello", Request(method="GET", path="/a/b"))
    assert inv.error is None, inv.error
    assert inv.response.status == 200
    assert inv.response.headers == (("content-type", TEXT),)
    assert inv.response.body == b"Hello from AssemblyScript!\n"
    assert inv.logs == ["hello called: GET /a/b"]
    # A fresh instance each time: same answer, one log line per call.
    again = ashost.invoke("hello", Request(method="DELETE", path="/ü"))
    assert again.response.body == b"Hello from AssemblyScript!\n"
    assert again.logs == ["hello called: DELETE /ü"]


def test_echo_round_trip(ashost):
    body = bytes(range(256)) * 5 + b"\x00\xff"
    res, lines = echo(ashost, method="POST", path="/a%20b/%2F/ünï", query="x=1&x=2&q=%C3%A9",
                      headers=(("accept", "*/*"), ("x-rep", "1"), ("x-rep", "2"), ("x-uni", "héllo ✓ 😀"),
                               ("x-empty", ""), ("x-rep", "3")),
                      body=body)
    assert res.status == 200
    assert lines == [
        "method: POST",
        "path: /a%20b/%2F/ünï",
        "query: x=1&x=2&q=%C3%A9",
        "headers: 6",
        "accept: */*",
        "x-rep: 1",
        "x-rep: 2",
        "x-uni: héllo ✓ 😀",
        "x-empty: ",
        "x-rep: 3",
        "config: 3",
        "EMPTY=",
        "GREETING=héllo wörld ✓",
        "K=v",
        f"body-length: {len(body)}",
        f"body-fnv1a32: {fnv1a32(body)}",
    ]
    # Response headers: repeats kept, in order.
    assert res.headers == (("content-type", TEXT), ("x-echo-method", "POST"),
                           ("x-echo-repeat", "a"), ("x-echo-repeat", "b"))


def test_echo_empty_request(ashost):
    res, lines = echo(ashost, method="GET", path="/", query="", headers=(), body=b"")
    assert lines[:4] == ["method: GET", "path: /", "query: ", "headers: 0"]
    assert lines[-2:] == ["body-length: 0", f"body-fnv1a32: {fnv1a32(b'')}"]


def test_echo_unicode_body_and_status(ashost):
    text = "ünïcødé ✓ 😀 \u0000 end"
    res, lines = echo(ashost, method="PUT", path="/", headers=(("x-echo-body", "text"), ("x-status", "404")),
                      body=text.encode("utf-8"))
    assert res.status == 404  # encoded as uint16 (cd 01 94)
    assert lines[-1] == "body-text: " + text
    assert lines[-3] == f"body-length: {len(text.encode())}"


def test_echo_bin_fields_not_utf8(ashost):
    # Header values, path and query that are not UTF-8 reach the guest as msgpack bin (ABI.md);
    # the SDK decodes them like Python's errors="replace".
    raw = b"a\xffb\xc3(".decode("utf-8", "surrogateescape")
    res, lines = echo(ashost, method="GET", path="/p" + raw, query="q=" + raw,
                      headers=(("x-bin", raw), ("x-ok", "ok")), body=b"")
    expected = b"a\xffb\xc3(".decode("utf-8", "replace")
    assert lines[1] == "path: /p" + expected
    assert lines[2] == "query: q=" + expected
    assert lines[3:6] == ["headers: 2", "x-bin: " + expected, "x-ok: ok"]


def test_echo_many_headers_and_large_body(ashost):
    # > 15 headers: array16; a body over 64 KiB: bin32.
    headers = tuple((f"x-h{i:02d}", "v" * i) for i in range(40))
    body = bytes((i * 7) & 0xFF for i in range(200_000))
    inv = ashost.invoke("echo", Request(method="POST", path="/", headers=headers, body=body))
    assert inv.error is None, inv.error
    lines = inv.response.body.decode().split("\n")
    assert lines[3] == "headers: 40"
    assert lines[4:44] == [f"{n}: {v}" for n, v in headers]
    assert f"body-length: {len(body)}" in lines
    assert f"body-fnv1a32: {fnv1a32(body)}" in lines


def test_echo_many_config_variables(tmp_path):
    config = {f"VAR_{i:02d}": f"value {i} ✓" for i in range(20)}  # > 15 entries: map16
    with Host(small_settings(tmp_path / "data")) as h:
        h.deploy("echo", module("echo"), config=config)
        inv = h.invoke("echo", Request(method="GET", path="/"))
    assert inv.error is None, inv.error
    lines = inv.response.body.decode().split("\n")
    start = lines.index("config: 20") + 1
    assert lines[start:start + 20] == [f"{k}={v}" for k, v in sorted(config.items())]


def test_over_real_http(tmp_path):
    with Server(tmp_path / "data") as srv:
        assert srv.deploy("as-hello", module("hello")).status_code == 201
        r = srv.client.put("/v1/functions/as-echo",
                           files={"module": ("echo.wasm", module("echo"), "application/wasm"),
                                  "config": (None, json.dumps({"config": {"K": "vé"}}), "application/json")})
        assert r.status_code == 201, r.text

        r = srv.client.get("/fn/as-hello/x/y?z=1")
        assert r.status_code == 200
        assert r.headers["content-type"] == TEXT
        assert r.text == "Hello from AssemblyScript!\n"
        deadline = time.monotonic() + 10
        logs: list = []
        while time.monotonic() < deadline:
            logs = srv.client.get("/v1/functions/as-hello/logs").json()["invocations"]
            if logs:
                break
            time.sleep(0.05)
        assert logs and logs[0]["logs"] == ["hello called: GET /x/y"]

        sent = b"\x00\xffbin"
        r = srv.client.post("/fn/as-echo/p%2Fq?a=1&a=2", content=sent,
                            headers=[("x-rep", "1"), ("x-rep", "2"), ("x-status", "201")])
        assert r.status_code == 201
        assert r.headers.get_list("x-echo-repeat") == ["a", "b"]
        assert r.headers["x-echo-method"] == "POST"
        lines = r.text.split("\n")
        assert lines[:3] == ["method: POST", "path: /p%2Fq", "query: a=1&a=2"]
        assert lines.index("x-rep: 1") < lines.index("x-rep: 2")
        assert "config: 1" in lines and "K=vé" in lines
        assert "body-length: 5" in lines
        assert f"body-fnv1a32: {fnv1a32(sent)}" in lines
