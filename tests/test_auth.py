"""Auth against a real server: every admin route needs the token, private functions need
it to be called, and the token never reaches a guest, a log, an error body or a metric."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import httpx
import msgpack
import pytest

from tests.server import Server
from wasmhost.http.openapi import build_openapi

TOKEN = "s3cret-admin-token-7f1d0c"
BEARER = {"authorization": f"Bearer {TOKEN}"}
WRONG_TOKENS = ({}, {"authorization": "Bearer wrong"}, {"authorization": f"Basic {TOKEN}"},
                {"authorization": "Bearer"}, {"authorization": f"Bearer {TOKEN}x"},
                {"authorization": f"Bearer {TOKEN[:-1]}"})
SEEN: list[str] = []  # every response text, searched for the token at the end


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, modules_dir: Path) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("auth") / "data"
    with Server(data, token=TOKEN) as srv:
        for name, module, params in (("open-echo", "echo_handler", {}),
                                     ("closed-echo", "echo_handler", {"private": "true"}),
                                     ("closed-env", "wagi_env", {"private": "true"}),
                                     ("closed-trap", "hostile/unreachable", {"private": "true"})):
            r = srv.deploy(name, (modules_dir / f"{module}.wasm").read_bytes(), **params)
            assert r.status_code == 201, r.text
            assert r.json()["private"] is bool(params)
        yield srv
        assert TOKEN not in srv.log()
        assert "Traceback" not in srv.log(), srv.log()


def call(server: Server, method: str, path: str, **kwargs) -> httpx.Response:
    r = server.client.request(method, path, **kwargs)
    SEEN.append(r.text + " " + " ".join(f"{k}: {v}" for k, v in r.headers.items()))
    return r


def admin_operations() -> list[tuple[str, str]]:
    """Every route the OpenAPI document marks as needing the admin token."""
    out = []
    for path, item in build_openapi()["paths"].items():
        for method, op in item.items():
            if op.get("security") == [{"bearer": []}]:
                out.append((method.upper(), path.replace("{name}", "closed-echo")))
    return out


def test_the_openapi_document_marks_every_admin_route() -> None:
    ops = admin_operations()
    assert len(ops) >= 8
    assert all(path.startswith("/v1/") for _, path in ops)
    assert {p for _, p in ops} >= {"/v1/functions", "/v1/functions/closed-echo", "/v1/info",
                                    "/v1/functions/closed-echo/rollback", "/v1/functions/closed-echo/logs"}


@pytest.mark.parametrize("headers", WRONG_TOKENS, ids=["none", "wrong", "basic", "empty", "longer", "shorter"])
def test_every_admin_route_refuses_a_missing_or_wrong_token(server: Server, headers: dict[str, str]) -> None:
    for method, path in admin_operations():
        r = call(server, method, path, headers=headers, content=b"{}" if method in ("PUT", "PATCH", "POST") else None)
        assert r.status_code == 401, (method, path, r.status_code, r.text)
        assert r.json()["error"]["code"] == "unauthorized"
        assert r.headers["www-authenticate"].startswith("Bearer")
    # nothing changed: the function is still there, still private, still version 1
    info = call(server, "GET", "/v1/functions/closed-echo", headers=BEARER).json()
    assert info["active_version"] == 1 and info["private"] is True


def test_a_private_function_needs_the_token(server: Server) -> None:
    for headers in WRONG_TOKENS:
        for path in ("/fn/closed-echo", "/fn/closed-echo@1/x", "/fn/closed-env", "/fn/closed-trap"):
            r = call(server, "POST", path, headers=headers, content=b"hi")
            assert r.status_code == 401, (path, headers, r.status_code, r.text)
            error = r.json()["error"]
            assert error["code"] == "unauthorized" and "is private" in error["message"]
            # RFC 9110 §11.6.1: a 401 says how to authenticate (it was missing on /fn/, issue 16)
            assert r.headers["www-authenticate"] == 'Bearer realm="wasmhost"'
            assert r.headers["x-request-id"] == error["request_id"]
    r = call(server, "POST", "/fn/closed-echo/x?q=1", headers=BEARER, content=b"hi")
    assert r.status_code == 200
    seen = msgpack.unpackb(r.content, raw=False)
    assert seen["body"] == b"hi" and seen["path"] == "/x"
    r = call(server, "GET", "/fn/closed-env", headers=BEARER)
    assert r.status_code == 200 and "REQUEST_METHOD=GET" in r.text
    r = call(server, "GET", "/fn/closed-trap", headers=BEARER)
    assert r.status_code == 502 and r.json()["error"]["code"] == "trap"
    # a public function needs no token
    assert call(server, "GET", "/fn/open-echo").status_code == 200


def test_the_token_never_reaches_the_guest(server: Server) -> None:
    """A valid token is the host's credential: stripped before the guest sees the request,
    on the inline path (handler), the worker path (WAGI) and for public functions too.
    Any other Authorization header is the function's own business and reaches it."""
    for name in ("closed-echo", "open-echo"):
        r = call(server, "POST", f"/fn/{name}", headers={**BEARER, "x-other": "1"}, content=b"x")
        seen = msgpack.unpackb(r.content, raw=False)
        names = [k for k, _ in seen["headers"]]
        assert "authorization" not in names and "x-other" in names
        assert TOKEN.encode() not in r.content
    r = call(server, "GET", "/fn/closed-env", headers=BEARER)
    assert r.status_code == 200 and "HTTP_AUTHORIZATION" not in r.text and TOKEN not in r.text
    r = call(server, "GET", "/fn/open-echo", headers={"authorization": "Bearer the-functions-own"})
    seen = msgpack.unpackb(r.content, raw=False)
    assert ["authorization", "Bearer the-functions-own"] in seen["headers"]


def test_private_is_the_functions_and_survives_updates_and_rollbacks(server: Server, modules_dir: Path) -> None:
    wasm = (modules_dir / "echo_handler.wasm").read_bytes()
    assert server.deploy("flip", wasm).json()["private"] is False
    r = call(server, "PATCH", "/v1/functions/flip", headers=BEARER, json={"private": True})
    assert r.status_code == 200 and r.json()["private"] is True and r.json()["version"] == 1  # no new version
    assert call(server, "GET", "/fn/flip").status_code == 401
    # a new version, a config change and a rollback keep it private
    assert server.deploy("flip", wasm, fuel=10_000_000).json()["private"] is True
    assert call(server, "PATCH", "/v1/functions/flip", headers=BEARER, json={"config": {"A": "b"}}).status_code == 200
    r = call(server, "POST", "/v1/functions/flip/rollback", headers=BEARER, json={"version": 1})
    assert r.status_code == 200 and r.json()["private"] is True
    assert call(server, "GET", "/fn/flip").status_code == 401
    assert call(server, "GET", "/fn/flip@2").status_code == 401  # every version
    info = call(server, "GET", "/v1/functions/flip", headers=BEARER).json()
    assert info["private"] is True and all(v["private"] for v in info["versions"])
    r = call(server, "PATCH", "/v1/functions/flip?private=false", headers=BEARER)
    assert r.status_code == 200 and r.json()["private"] is False
    assert call(server, "GET", "/fn/flip").status_code == 200


def test_bad_policy_values_are_refused_and_change_nothing(server: Server, modules_dir: Path) -> None:
    wasm = (modules_dir / "echo_handler.wasm").read_bytes()
    for params in ({"private": "maybe"}, {"concurrency": "-1"}, {"concurrency": "x"}, {"concurrency": "100000"}):
        r = server.deploy("refused", wasm, **params)
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request", (params, r.text)
    assert call(server, "GET", "/v1/functions/refused", headers=BEARER).status_code == 404
    for body in ({"private": "yes"}, {"private": 1}, {"concurrency": 1.5}, {"concurrency": True},
                 {"concurrency": 100000}, {"limits": {"fuel": 0}, "private": False}):
        r = call(server, "PATCH", "/v1/functions/closed-echo", headers=BEARER, json=body)
        assert r.status_code == 400, (body, r.text)
    info = call(server, "GET", "/v1/functions/closed-echo", headers=BEARER).json()
    assert info["private"] is True and info["active_version"] == 1 and info["concurrency"] is None


def test_the_token_is_in_no_log_error_or_metric(server: Server) -> None:
    """Wrong tokens and the right one, on every kind of route; then every answer seen in
    this module, the invocation logs, the metrics and the server's own log are searched."""
    for headers in (BEARER, *WRONG_TOKENS):
        call(server, "GET", "/fn/closed-trap", headers=headers)
        call(server, "GET", "/fn/no-such-function", headers=headers)
        call(server, "GET", "/v1/functions/no-such-function", headers=headers)
        call(server, "PUT", "/v1/functions/Bad_Name", headers=headers, content=b"\0asm")
    call(server, "GET", f"/fn/open-echo?token={TOKEN[:4]}", headers=BEARER)
    for name in ("closed-trap", "closed-echo", "open-echo"):
        r = call(server, "GET", f"/v1/functions/{name}/logs", headers=BEARER)
        assert r.status_code == 200
    assert call(server, "GET", "/metrics").status_code == 200
    assert call(server, "GET", "/v1/info", headers=BEARER).json()["auth"] == {"admin_token": True}
    leaks = [text[:200] for text in SEEN if TOKEN in text]
    assert not leaks
    assert TOKEN not in server.log()


def test_private_needs_a_server_token(tmp_path: Path, modules_dir: Path) -> None:
    """Without an admin token nobody could call a private function: refused, not silently public."""
    with Server(tmp_path / "data") as srv:
        wasm = (modules_dir / "echo_handler.wasm").read_bytes()
        r = srv.deploy("p", wasm, private="true")
        assert r.status_code == 400 and "no admin token" in r.json()["error"]["message"]
        assert srv.client.get("/v1/functions/p").status_code == 404
        assert srv.deploy("p", wasm, private="false").status_code == 201
        r = srv.client.patch("/v1/functions/p", json={"private": True})
        assert r.status_code == 400 and srv.client.get("/fn/p").status_code == 200


def test_a_private_function_answers_401_before_reading_the_body(server: Server) -> None:
    """Issue 15: `100 Continue` came before the 401, so a caller without the token could make the
    server take its body. Now the 401 comes from the head, and the body is never asked for."""
    import socket

    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /fn/closed-echo HTTP/1.1\r\nHost: x\r\nContent-Length: 16000000\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            assert chunk, answer
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 401 ") and b"100 Continue" not in answer, answer[:300]
    assert b"connection: close" in answer.lower()
