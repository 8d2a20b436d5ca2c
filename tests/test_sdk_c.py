"""The C guest SDK (guest-sdk/c/wasmhost.h) and its committed examples (modules/wasm/c-*.wasm).

(a) The SDK's codec unit tests (guest-sdk/c/test_wasmhost.c) are compiled with the machine's gcc,
    under AddressSanitizer + UBSan (every malformed input sits in an exact-size buffer, so any read
    past it fails the run) and again optimised without sanitizers.
(b) Every committed c-*.wasm is deployed to a real Host and called; one over real HTTP.
No wasm toolchain is needed: modules/c/build.sh rebuilds the .wasm files.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
import wasmtime

from tests.conftest import small_settings
from tests.server import Server
from wasmhost.host import Host
from wasmhost.models import Request

ROOT = Path(__file__).resolve().parent.parent
SDK = ROOT / "guest-sdk" / "c"
WASM = ROOT / "modules" / "wasm"
HANDLERS = ("hello", "hello-zigcc", "router", "sha256")
WAGI = ("wagi_hello",)
TEXT = "text/plain; charset=utf-8"
JSON = "application/json"


def module(name: str) -> bytes:
    return (WASM / f"c-{name}.wasm").read_bytes()


def fn(name: str) -> str:
    """Function names allow no "_": c-wagi_hello.wasm is deployed as wagi-hello."""
    return name.replace("_", "-")


@pytest.fixture
def chost(tmp_path: Path):
    with Host(small_settings(tmp_path / "data")) as h:
        for name in HANDLERS + WAGI:
            h.deploy(fn(name), module(name), limits={"fuel": 1_000_000_000},
                     config={"GREETING": "héllo", "EMPTY": ""} if name == "router" else None)
        yield h


# ----------------------------------------------------------------------------- (a) codec unit tests

def compile_and_run(tmp_path: Path, name: str, *flags: str) -> subprocess.CompletedProcess:
    exe = tmp_path / name
    build = subprocess.run(
        ["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-Wshadow", *flags, "-I", str(SDK),
         "-o", str(exe), str(SDK / "test_wasmhost.c")],
        capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASAN_", "UBSAN_"))}
    return subprocess.run([str(exe)], capture_output=True, text=True, timeout=300, env=env)


def check_unit_run(run: subprocess.CompletedProcess) -> None:
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stderr == ""
    assert run.stdout.startswith("ok: ")
    assert int(run.stdout.split()[1]) > 8000  # the fuzz and truncation loops all ran


def test_codec_unit_tests_under_sanitizers(tmp_path: Path):
    check_unit_run(compile_and_run(tmp_path, "t_asan", "-g", "-O1", "-fsanitize=address,undefined",
                                   "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"))


def test_codec_unit_tests_optimised(tmp_path: Path):
    check_unit_run(compile_and_run(tmp_path, "t_o2", "-O2"))


def test_codec_unit_tests_report_failures(tmp_path: Path):
    """The C test program really fails when the codec is wrong (here: fixstr limit off by one)."""
    broken = tmp_path / "broken"
    broken.mkdir()
    header = (SDK / "wasmhost.h").read_text()
    needle = "wh__header(w, len, 0xa0, 31, 0xd9, 0xda, 0xdb);"
    assert needle in header
    (broken / "wasmhost.h").write_text(header.replace(needle, needle.replace("31", "30")))
    (broken / "test_wasmhost.c").write_text((SDK / "test_wasmhost.c").read_text())
    exe = tmp_path / "t_broken"
    build = subprocess.run(["gcc", "-std=c11", "-O1", "-o", str(exe), str(broken / "test_wasmhost.c")],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 1
    assert "FAILED" in run.stderr and "CHECK failed" in run.stderr


# ----------------------------------------------------------------------------- (b) committed modules

def test_every_example_is_committed_small_and_speaks_its_abi():
    engine = wasmtime.Engine()
    found = sorted(p.name[len("c-"):-len(".wasm")] for p in WASM.glob("c-*.wasm"))
    assert found == sorted(HANDLERS + WAGI)  # every committed module is exercised below
    for name in HANDLERS:
        data = module(name)
        assert len(data) < 16 * 1024, name
        m = wasmtime.Module(engine, data)
        exports = {e.name for e in m.exports}
        assert {"memory", "wasmhost_alloc", "wasmhost_handle"} <= exports, name
        assert "_start" not in exports
        # freestanding: no WASI at all, only the log import (the fast path)
        assert {(i.module, i.name) for i in m.imports} == {("wasmhost", "log")}, name
        memory = next(e.type for e in m.exports if e.name == "memory")
        assert memory.limits.min <= 4, name  # small initial memory (a 64 KiB stack)
    m = wasmtime.Module(engine, module("wagi_hello"))
    assert "_start" in {e.name for e in m.exports}
    assert {i.module for i in m.imports} == {"wasi_snapshot_preview1"}


def test_abi_detected_at_deploy(tmp_path: Path):
    with Host(small_settings(tmp_path / "data")) as h:
        for name in HANDLERS:
            assert h.deploy(name, module(name)).version.abi == "handler"
        assert h.deploy("wagi", module("wagi_hello")).version.abi == "wagi"


@pytest.mark.parametrize("name", ["hello", "hello-zigcc"])
def test_hello_clang_and_zig_cc(chost, name):
    inv = chost.invoke(name, Request(method="GET", path="/any/path", query="a=1",
                                     headers=(("accept", "*/*"),), body=b"ignored"))
    assert inv.error is None, inv.error
    assert inv.response.status == 200
    assert inv.response.headers == (("content-type", TEXT),)
    assert inv.response.body == b"Hello from C!\n"
    assert inv.logs == ["hello from C called"]


def call(host, name, method, path, query="", headers=(), body=b""):
    inv = host.invoke(name, Request(method=method, path=path, query=query, headers=headers, body=body))
    assert inv.error is None, inv.error
    return inv.response


def as_json(resp):
    assert dict(resp.headers)["content-type"] == JSON
    return json.loads(resp.body)


def test_router_path_parameters(chost):
    r = call(chost, "router", "GET", "/users/42")
    assert r.status == 200 and as_json(r) == {"id": "42"}
    r = call(chost, "router", "GET", "/users/42/posts/hello-world", query="x=1")
    assert r.status == 200 and as_json(r) == {"id": "42", "post": "hello-world"}
    # parameters are percent-decoded after splitting, so %2F stays inside one parameter
    r = call(chost, "router", "GET", "/users/a%20b%2Fc/posts/%22q%22")
    assert r.status == 200 and as_json(r) == {"id": "a b/c", "post": '"q"'}
    # JSON escaping of a raw quote, backslash and a control byte
    r = call(chost, "router", "GET", '/users/"\\%01')
    assert as_json(r) == {"id": '"\\\x01'}


def test_router_404_and_405(chost):
    for path in ("/", "/nope", "/users", "/users/", "/users/1/posts", "/users/1/posts/", "/users//posts/1",
                 "/users/1/posts/2/x", "/echo/more", "/usersx/1"):
        r = call(chost, "router", "GET", path)
        assert r.status == 404, path
        assert as_json(r) == {"error": "not found", "path": path}
    r = call(chost, "router", "DELETE", "/users/7")
    assert r.status == 405
    assert dict(r.headers)["allow"] == "GET"
    assert as_json(r) == {"error": "method not allowed", "allow": "GET"}
    r = call(chost, "router", "GET", "/echo")
    assert r.status == 405 and dict(r.headers)["allow"] == "POST"
    r = call(chost, "router", "POST", "/users/7/posts/8")
    assert r.status == 405 and dict(r.headers)["allow"] == "GET"


def test_router_echo(chost):
    body = bytes(range(256)) * 100
    r = call(chost, "router", "POST", "/echo", headers=(("x-a", "1"), ("Content-Type", "application/x-thing")),
             body=body)
    assert r.status == 200
    assert r.body == body
    assert r.headers == (("content-type", "application/x-thing"),)
    r = call(chost, "router", "POST", "/echo")
    assert r.status == 200 and r.body == b"" and r.headers == (("content-type", "application/octet-stream"),)


def test_router_config_lookup(chost):
    r = call(chost, "router", "GET", "/config/GREETING")
    assert r.status == 200 and as_json(r) == {"key": "GREETING", "value": "héllo"}
    r = call(chost, "router", "GET", "/config/EMPTY")
    assert r.status == 200 and as_json(r) == {"key": "EMPTY", "value": ""}
    r = call(chost, "router", "GET", "/config/greeting")  # exact names
    assert r.status == 404 and as_json(r) == {"key": "greeting", "error": "not configured"}


def test_router_tolerates_bin_path_and_header_values(chost):
    """Bytes that are not UTF-8 reach the guest as msgpack bin (ABI.md); the SDK accepts them."""
    raw = b"\xff\xfe".decode("utf-8", "surrogateescape")
    r = call(chost, "router", "POST", "/echo", query=raw,
             headers=(("x-raw", raw), ("content-type", "text/x-" + "a" * 40)), body=b"B")
    assert r.status == 200 and r.body == b"B" and dict(r.headers)["content-type"] == "text/x-" + "a" * 40
    r = call(chost, "router", "GET", "/users/" + raw)
    assert r.status == 200
    assert r.body == b'{"id": "\xff\xfe"}\n'


@pytest.mark.parametrize("body", [b"", b"abc", b"a" * 55, b"a" * 56, b"a" * 63, b"a" * 64, b"a" * 65,
                                  bytes(range(256)) * 7, os.urandom(100_003), os.urandom(1_000_000)],
                         ids=lambda b: f"{len(b)}B")
def test_sha256_matches_hashlib(chost, body):
    inv = chost.invoke("sha256", Request(method="POST", path="/", body=body))
    assert inv.error is None, inv.error
    assert inv.response.status == 200
    assert inv.response.headers == (("content-type", "text/plain"),)
    assert inv.response.body.decode() == hashlib.sha256(body).hexdigest()


def test_sha256_is_cpu_bound(chost):
    small = chost.invoke("sha256", Request(method="POST", body=b"x" * 1000)).fuel_used
    big = chost.invoke("sha256", Request(method="POST", body=b"x" * 100_000)).fuel_used
    assert big > 50 * small  # fuel grows with the input: the work is really done per call


def test_wagi_hello_gets_the_cgi_environment(chost):
    inv = chost.invoke("wagi-hello", Request(method="PUT", path="/some/where", query="a=1&b=two",
                                             headers=(("accept", "*/*"),), body=b"ignored",
                                             script_name="/fn/wagi-hello"))
    assert inv.error is None, inv.error
    assert inv.response.status == 200
    assert inv.response.headers == (("content-type", "text/plain"),)
    assert inv.response.body == b"Hello from C WAGI, PUT /some/where\nQUERY_STRING=a=1&b=two\n"
    assert inv.logs == ["wagi_hello served /some/where"]
    # PATH_INFO is decoded, QUERY_STRING is not
    inv = chost.invoke("wagi-hello", Request(method="GET", path="/a%20b", query="x=%41"))
    assert inv.response.body == b"Hello from C WAGI, GET /a b\nQUERY_STRING=x=%41\n"


def test_over_http(tmp_path: Path):
    with Server(tmp_path / "data") as srv:
        for name in ("hello", "router", "sha256", "wagi_hello"):
            assert srv.deploy(fn(name), module(name)).status_code in (200, 201)
        r = srv.client.get("/fn/hello")
        assert r.status_code == 200
        assert r.headers["content-type"] == TEXT
        assert r.text == "Hello from C!\n"
        r = srv.client.get("/fn/router/users/42/posts/7")
        assert r.status_code == 200 and r.json() == {"id": "42", "post": "7"}
        r = srv.client.get("/fn/router/missing")
        assert r.status_code == 404 and r.json()["error"] == "not found"
        r = srv.client.put("/fn/router/users/1")
        assert r.status_code == 405 and r.headers["allow"] == "GET"
        r = srv.client.post("/fn/router/echo", content=b"ping", headers={"content-type": "text/plain"})
        assert r.status_code == 200 and r.content == b"ping" and r.headers["content-type"] == "text/plain"
        body = os.urandom(200_000)
        r = srv.client.post("/fn/sha256", content=body)
        assert r.status_code == 200 and r.text == hashlib.sha256(body).hexdigest()
        r = srv.client.get("/fn/wagi-hello/x/y", params={"q": "1"})
        assert r.status_code == 200
        assert r.text == "Hello from C WAGI, GET /x/y\nQUERY_STRING=q=1\n"
