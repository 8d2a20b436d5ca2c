"""Every committed example module, deployed to one real server and called over HTTP.

The per-language tests (tests/test_sdk_*.py) check each example in depth; this one
checks that the whole set, as `make serve` deploys it, answers over the network.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from .conftest import ROOT
from .server import Server

WASM = ROOT / "modules" / "wasm"

# module -> (method, path after /fn/<name>, body, status, what the body must contain)
CALLS: dict[str, tuple[str, str, bytes, int, bytes]] = {
    "as-hello": ("GET", "/", b"", 200, b"Hello from AssemblyScript!\n"),
    "as-echo": ("POST", "/a/b?x=1", b"hi", 200, b"/a/b"),
    "c-hello": ("GET", "/", b"", 200, b"Hello from C!\n"),
    "c-hello-zigcc": ("GET", "/", b"", 200, b"Hello from C!\n"),
    "c-router": ("GET", "/users/42/posts/7", b"", 200, b'"post": "7"'),
    "c-sha256": ("POST", "/", b"abc", 200, hashlib.sha256(b"abc").hexdigest().encode()),
    "c-wagi_hello": ("GET", "/p?q=1", b"", 200, b"Hello from C WAGI"),
    "go-hello": ("GET", "/", b"", 200, b"Go"),
    "rust-hello": ("GET", "/", b"", 200, b"Hello from Rust!\n"),
    "rust-echo": ("POST", "/a/b?x=1", b"hi", 200, b'"path"'),
    "rust-json_api": ("POST", "/items", b'{"name": "pen", "qty": 2}', 201, b'"name"'),
    "rust-wagi_hello": ("POST", "/p", b"body", 200, b"Hello from Rust WAGI"),
    "rust-large": ("GET", "/", b"", 200, b"large ok\n"),
    "zig-hello": ("GET", "/", b"", 200, b"Hello from Zig!\n"),
    "zig-echo": ("PUT", "/some/path?q=1", b"hi", 200, b"/some/path"),
    "zig-markdown": ("POST", "/", b"# Hello *world*", 200, b"<h1>Hello <em>world</em></h1>"),
}


def test_every_committed_example_is_covered() -> None:
    assert {p.stem for p in WASM.glob("*.wasm")} == set(CALLS)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with Server(tmp_path_factory.mktemp("examples") / "data") as srv:
        for module in CALLS:
            name = module.replace("_", "-")
            response = srv.deploy(name, (WASM / f"{module}.wasm").read_bytes(), fuel=2_000_000_000)
            assert response.status_code == 201, (module, response.text)
        yield srv


@pytest.mark.parametrize("module", sorted(CALLS))
def test_example_answers_over_http(server: Server, module: str) -> None:
    method, path, body, status, expected = CALLS[module]
    response = server.client.request(method, f"/fn/{module.replace('_', '-')}{path}", content=body)
    assert response.status_code == status, (module, response.text[:300])
    assert expected in response.content, (module, response.content[:300])
    assert "server-timing" in response.headers


def test_json_api_refuses_bad_input_over_http(server: Server) -> None:
    response = server.client.post("/fn/rust-json-api/items", content=b'{"name": "", "qty": -1}')
    assert response.status_code == 400
    assert "error" in json.loads(response.content)
