"""The Rust guest SDK (guest-sdk/rust) through its committed example modules.

The modules in modules/wasm/rust-*.wasm are built by modules/rust/build.sh, which also
runs the SDK's msgpack/JSON unit tests natively. Here no toolchain is needed: the
`echo` example decodes each request with the SDK's msgpack decoder and answers JSON
describing it, and re-encodes selected headers and the raw body through the SDK's
encoder, so the codec is checked on every run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import small_settings
from tests.server import Server
from wasmhost.host import Host
from wasmhost.models import Request

ROOT = Path(__file__).resolve().parent.parent
WASM = ROOT / "modules" / "wasm"
EXAMPLES = ("hello", "echo", "json_api", "wagi_hello", "large")


def module(name: str) -> bytes:
    return (WASM / f"rust-{name}.wasm").read_bytes()


def headers_of(response) -> list[tuple[str, str]]:
    return [(k, v) for k, v in response.headers]


@pytest.fixture
def host(tmp_path: Path):
    with Host(small_settings(tmp_path / "data")) as h:
        yield h


def call(host: Host, name: str, method: str = "GET", path: str = "/", query: str = "",
         headers: tuple[tuple[str, str], ...] = (), body: bytes = b""):
    inv = host.invoke(name, Request(method=method, path=path, query=query, headers=headers, body=body))
    assert inv.error is None, inv.error
    return inv


def test_every_example_is_committed():
    found = sorted(p.name for p in WASM.glob("rust-*.wasm"))
    assert found == sorted(f"rust-{name}.wasm" for name in EXAMPLES)
    for name in EXAMPLES:
        assert module(name).startswith(b"\0asm\x01\0\0\0")


def test_hello(host: Host):
    info = host.deploy("hello", module("hello")).to_dict()
    assert info["abi"] == "handler"
    assert info["imports"] == ["wasmhost.log"]  # the fast path: no WASI
    assert {"memory", "wasmhost_alloc", "wasmhost_handle"} <= set(info["exports"])
    inv = call(host, "hello", path="/x/y")
    assert inv.response.status == 200
    assert inv.response.body == b"Hello from Rust!\n"
    assert ("content-type", "text/plain; charset=utf-8") in headers_of(inv.response)
    assert inv.logs == ["hello called: GET /x/y"]


def test_echo_codec_round_trip(host: Host):
    host.deploy("echo", module("echo"), config={"GREETING": "héllo ✓", "EMPTY": "", "K": "v"})
    body = bytes(range(256)) * 3
    headers = (("accept", "*/*"), ("x-rep", "one"), ("x-rep", "two"), ("x-uni", "ünï 😀"),
               ("x-echo-x-back", "réponse"), ("x-echo-x-back", "second"))
    inv = call(host, "echo", method="PUT", path="/a%20b/ü", query="q=1&r=%2F", headers=headers, body=body)
    r = inv.response
    assert r.status == 200
    assert ("content-type", "application/json") in headers_of(r)
    # The encoder wrote the two reflected headers, repeated and non-ASCII, in order.
    assert [v for k, v in headers_of(r) if k == "x-back"] == ["réponse", "second"]
    doc = json.loads(r.body)
    assert doc["method"] == "PUT"
    assert doc["path"] == "/a%20b/ü"
    assert doc["query"] == "q=1&r=%2F"
    assert doc["headers"] == [list(h) for h in headers]
    assert doc["config"] == {"GREETING": "héllo ✓", "EMPTY": "", "K": "v"}
    assert doc["body_len"] == 768
    assert bytes.fromhex(doc["body_hex"]) == body
    assert doc["body_text"] is None


def test_echo_text_body_empty_request_and_status(host: Host):
    host.deploy("echo", module("echo"))
    inv = call(host, "echo", method="POST", query="status=418", body="grüße 😀".encode())
    assert inv.response.status == 418
    doc = json.loads(inv.response.body)
    assert doc["body_text"] == "grüße 😀"
    assert doc["headers"] == [] and doc["config"] == {} and doc["path"] == "/"
    inv = call(host, "echo")
    doc = json.loads(inv.response.body)
    assert (doc["method"], doc["query"], doc["body_len"], doc["body_hex"]) == ("GET", "", 0, "")


def test_echo_large_shapes(host: Host):
    """bin32 body (> 64 KiB), array16 headers (> 15), str8/str16 values, map16 config."""
    config = {f"KEY_{i}": "v" * i for i in range(20)}
    host.deploy("echo", module("echo"), config=config)
    body = bytes((i * 7) % 256 for i in range(70_000))
    headers = tuple((f"x-h{i}", "z" * (i * 20)) for i in range(20)) + (("x-long", "L" * 70_000),)
    inv = call(host, "echo", method="POST", path="/big", headers=headers, body=body, query="raw=1")
    assert inv.response.body == body  # bin32 in and out
    assert ("content-type", "application/octet-stream") in headers_of(inv.response)
    inv = call(host, "echo", method="POST", path="/big", headers=headers, body=body)
    doc = json.loads(inv.response.body)
    assert doc["headers"] == [list(h) for h in headers]
    assert doc["config"] == config
    assert doc["body_len"] == 70_000 and bytes.fromhex(doc["body_hex"]) == body


def test_echo_non_utf8_header_is_tolerated(host: Host):
    """A header value that is not UTF-8 arrives as msgpack bin: the SDK decodes it (lossily)."""
    host.deploy("echo", module("echo"))
    raw = b"caf\xe9".decode("utf-8", "surrogateescape")
    inv = call(host, "echo", headers=(("x-raw", raw), ("x-ok", "fine")))
    doc = json.loads(inv.response.body)
    assert doc["headers"] == [["x-raw", "caf\ufffd"], ["x-ok", "fine"]]


def post_item(host: Host, body: bytes | str, content_type: str = "application/json"):
    if isinstance(body, str):
        body = body.encode()
    return call(host, "api", method="POST", path="/items", headers=(("content-type", content_type),), body=body)


def fnv1a64(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) % 2**64
    return f"{h:016x}"


def test_json_api_create(host: Host):
    host.deploy("api", module("json_api"))
    inv = post_item(host, '{"name": "wïdget ✓", "qty": 3, "extra": [1, {"a": null}]}')
    r = inv.response
    assert r.status == 201, r.body
    assert ("content-type", "application/json") in headers_of(r)
    item = json.loads(r.body)
    expected_id = fnv1a64("wïdget ✓".encode())
    assert item == {"id": expected_id, "name": "wïdget ✓", "qty": 3}
    assert ("location", f"/items/{expected_id}") in headers_of(r)
    assert inv.logs == [f"created item {expected_id}"]
    # The same name always gives the same id; zero is a valid quantity; 64 characters is the limit.
    assert json.loads(post_item(host, '{"qty":0,"name":"wïdget ✓"}').response.body)["id"] == expected_id
    assert post_item(host, json.dumps({"name": "é" * 64, "qty": 10**12})).response.status == 201


@pytest.mark.parametrize("body, field", [
    ("{not json", "malformed JSON"),
    ("", "malformed JSON"),
    ('{"name": "a", "qty": 1} trailing', "malformed JSON"),
    ('[1, 2]', "object"),
    ('{"qty": 1}', "name"),
    ('{"name": "", "qty": 1}', "name"),
    ('{"name": "' + "x" * 65 + '", "qty": 1}', "name"),
    ('{"name": 5, "qty": 1}', "name"),
    ('{"name": "a"}', "qty"),
    ('{"name": "a", "qty": -1}', "qty"),
    ('{"name": "a", "qty": 1.5}', "qty"),
    ('{"name": "a", "qty": "3"}', "qty"),
])
def test_json_api_rejects(host: Host, body: str, field: str):
    host.deploy("api", module("json_api"))
    r = post_item(host, body).response
    assert r.status == 400, r.body
    assert ("content-type", "application/json") in headers_of(r)
    error = json.loads(r.body)["error"]
    assert field in error


def test_json_api_routes(host: Host):
    host.deploy("api", module("json_api"))
    r = call(host, "api", path="/items/abc123").response
    assert r.status == 404 and json.loads(r.body) == {"error": "item abc123 not found"}
    r = call(host, "api", method="DELETE", path="/items/abc123").response
    assert r.status == 405 and ("allow", "GET, HEAD") in headers_of(r)
    r = call(host, "api", method="GET", path="/items").response
    assert r.status == 405 and ("allow", "POST") in headers_of(r)
    assert "error" in json.loads(r.body)
    r = call(host, "api", path="/elsewhere").response
    assert r.status == 404 and "no route" in json.loads(r.body)["error"]
    r = post_item(host, '{"name": "a", "qty": 1}', content_type="text/plain")
    assert r.response.status == 415


def test_wagi_hello(host: Host):
    assert host.deploy("wagi", module("wagi_hello")).to_dict()["abi"] == "wagi"
    inv = host.invoke("wagi", Request(method="POST", path="/some/where", body=b"x" * 1234,
                                      script_name="/fn/wagi"))
    assert inv.error is None, inv.error
    r = inv.response
    assert r.status == 200
    assert ("content-type", "text/plain") in headers_of(r)
    assert r.body == b"Hello from Rust WAGI\nmethod: POST\npath: /some/where\nbody: 1234 bytes\n"
    assert inv.logs == ["wagi_hello: POST /some/where (1234 bytes)"]


def code_section_size(wasm: bytes) -> int:
    def leb(i: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            byte = wasm[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value, i
    i = 8
    while i < len(wasm):
        section_id = wasm[i]
        size, i = leb(i + 1)
        if section_id == 10:
            return size
        i += size
    raise AssertionError("no code section")


def test_large(host: Host):
    wasm = module("large")
    assert code_section_size(wasm) >= 2 * 1024 * 1024
    assert len(wasm) < 6 * 1024 * 1024
    assert host.deploy("large", wasm).to_dict()["imports"] == []
    inv = call(host, "large", path="/go", body=b"abc")
    assert inv.response.status == 200
    assert inv.response.body == b"large ok\n"
    checksum = dict(headers_of(inv.response))["x-large-checksum"]
    assert len(checksum) == 16 and int(checksum, 16) != 0


def test_over_http(tmp_path: Path):
    with Server(tmp_path / "data") as srv:
        for name, example in (("rhello", "hello"), ("recho", "echo"), ("rapi", "json_api"), ("rwagi", "wagi_hello")):
            resp = srv.deploy(name, module(example))
            assert resp.status_code in (200, 201), resp.text
        r = srv.client.get("/fn/rhello/")
        assert r.status_code == 200 and r.text == "Hello from Rust!\n"
        assert r.headers["content-type"] == "text/plain; charset=utf-8"
        r = srv.client.post("/fn/recho/p%20q?a=1", content=b"\x00\xff body",
                            headers=[("X-Rep", "1"), ("X-Rep", "2"), ("X-Echo-X-Back", "ok")])
        assert r.status_code == 200
        assert r.headers["x-back"] == "ok"
        doc = r.json()
        assert doc["method"] == "POST" and doc["path"] == "/p%20q" and doc["query"] == "a=1"
        assert [v for k, v in doc["headers"] if k == "x-rep"] == ["1", "2"]
        assert bytes.fromhex(doc["body_hex"]) == b"\x00\xff body"
        r = srv.client.post("/fn/rapi/items", json={"name": "bolt", "qty": 7})
        assert r.status_code == 201 and r.json() == {"id": fnv1a64(b"bolt"), "name": "bolt", "qty": 7}
        r = srv.client.post("/fn/rapi/items", json={"name": "bolt", "qty": -7})
        assert r.status_code == 400 and "qty" in r.json()["error"]
        r = srv.client.put("/fn/rwagi/hi", content=b"12345")
        assert r.status_code == 200
        assert r.text == "Hello from Rust WAGI\nmethod: PUT\npath: /hi\nbody: 5 bytes\n"
