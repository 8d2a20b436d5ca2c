"""The Node.js benchmark peer (bench/peer_node.py, bench/peers/node/) answers what wasmhost answers."""

from __future__ import annotations

import http.client
from pathlib import Path

import pytest

from bench.common import HELLO
from bench.peer_node import node_per_call, node_version, start_node_server
from wasmhost.host import Host
from wasmhost.models import Request
from wasmhost.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
HELLO_HANDLER = ROOT / "modules" / "build" / "hello_handler.wasm"
SHA256 = ROOT / "modules" / "wasm" / "c-sha256.wasm"
ABC_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.fixture(scope="module")
def modules() -> dict[str, Path]:
    if node_version() is None:
        pytest.skip("node >= 20 is not installed")
    if not HELLO_HANDLER.exists():
        from modules.build import build_all
        build_all()
    return {"hello": HELLO_HANDLER, "sha": SHA256}


def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, str | None, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body)
        resp = conn.getresponse()
        return resp.status, resp.getheader("content-type"), resp.read()
    finally:
        conn.close()


def wasmhost_run(tmp: Path, wasm: Path, method: str, body: bytes = b"") -> tuple[int, str | None, bytes]:
    """What `python -m wasmhost run FILE -i [-X POST -d ...]` answers, done in-process the way cmd_run does."""
    headers = (("content-length", str(len(body))),) if body else ()
    with Host(Settings.from_env(data_dir=tmp)) as host:
        host.deploy("run", wasm.read_bytes())
        inv = host.invoke("run", Request(method=method, path="/", headers=headers, body=body, script_name="/fn/run"))
    assert inv.error is None and inv.response is not None, inv.error
    content_type = dict(inv.response.headers).get("content-type")
    return inv.response.status, content_type, inv.response.body


def test_node_server_answers_like_wasmhost(modules: dict[str, Path], tmp_path: Path) -> None:
    expected = {
        "hello_get": wasmhost_run(tmp_path / "a", modules["hello"], "GET"),
        "sha_post": wasmhost_run(tmp_path / "b", modules["sha"], "POST", b"abc"),
        "sha_get": wasmhost_run(tmp_path / "c", modules["sha"], "GET"),
    }
    assert expected == {"hello_get": (200, "text/plain; charset=utf-8", HELLO),
                        "sha_post": (200, "text/plain", ABC_SHA256.encode()),
                        "sha_get": (200, "text/plain", EMPTY_SHA256.encode())}
    proc = start_node_server(tmp_path, modules)
    try:
        assert request(proc.port, "GET", "/fn/hello") == expected["hello_get"]
        assert request(proc.port, "GET", "/fn/hello/a/b?x=1") == expected["hello_get"]
        assert request(proc.port, "POST", "/fn/sha", b"abc") == expected["sha_post"]
        assert request(proc.port, "GET", "/fn/sha") == expected["sha_get"]
        assert request(proc.port, "GET", "/fn/nope")[0] == 404
    finally:
        proc.stop()


def test_node_per_call_medians(modules: dict[str, Path]) -> None:
    result = node_per_call(modules, n=200, repeats=2)
    assert result["node"] == node_version()
    for name in modules:
        assert len(result[name]["us_per_call_runs"]) == 2
        assert result[name]["us_median"] > 0
