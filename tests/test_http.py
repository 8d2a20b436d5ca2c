"""The HTTP service against a real `wasmhost serve` subprocess and a real client."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import msgpack
import pytest

from .server import Server

TOKEN = "s3cret-token-for-tests"


def timing(response: httpx.Response) -> dict[str, str]:
    """Server-Timing as {metric: 'desc=...;dur=...'}."""
    out = {}
    for part in response.headers["server-timing"].split(","):
        name, _, rest = part.strip().partition(";")
        out[name] = rest
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory, modules_dir: Path):
    data = tmp_path_factory.mktemp("http") / "data"
    with Server(data, env={"WASMHOST_MAX_REQUEST_BYTES": str(256 * 1024),
                           "WASMHOST_MAX_MODULE_BYTES": str(4 * 1024 * 1024),
                           "WASMHOST_DEFAULT_FUEL": "50000000",
                           "WASMHOST_MAX_MEMORY_MB": "128", "WASMHOST_POOL_INSTANCES": "40"}) as srv:
        for name, module in [("hello", "hello_handler"), ("wagi", "hello_wagi"), ("echo", "echo_handler"),
                             ("status", "wagi_status"), ("routes", "wagi_routes"), ("env", "wagi_env")]:
            r = srv.deploy(name, (modules_dir / f"{module}.wasm").read_bytes())
            assert r.status_code == 201, r.text
        yield srv


def test_deploy_then_invoke_is_served_from_memory(server: Server) -> None:
    r = server.client.get("/fn/hello")
    assert r.status_code == 200
    assert r.content == b"Hello, world!\n"
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    t = timing(r)
    assert t["load"].startswith('desc="memory"')
    assert set(t) == {"queue", "load", "instantiate", "run"}
    assert r.headers["x-wasmhost-version"] == "1"
    assert len(r.headers["x-request-id"]) >= 16


def test_full_request_reaches_the_function(server: Server) -> None:
    r = server.client.post("/fn/echo/a/b%20c", params={"x": "1", "y": "two"}, content=b"\x00payload",
                           headers=[("x-rep", "1"), ("x-rep", "2"), ("content-type", "application/octet-stream")])
    assert r.status_code == 200
    seen = msgpack.unpackb(r.content, raw=False)
    assert seen["method"] == "POST"
    assert seen["path"] == "/a/b%20c"
    assert seen["query"] == "x=1&y=two"
    assert seen["body"] == b"\x00payload"
    assert ["x-rep", "1"] in seen["headers"] and ["x-rep", "2"] in seen["headers"]


def test_wagi_over_http(server: Server) -> None:
    r = server.client.get("/fn/wagi")
    assert r.status_code == 200 and r.content == b"Hello from WAGI\n"
    r = server.client.get("/fn/status")
    assert r.status_code == 404 and r.content == b"not here\n"
    assert r.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert server.client.get("/fn/routes/files/x/y").content == b"files route\n"
    env = server.client.get("/fn/env/p/q", params={"a": "1"}, headers={"authorization": "Bearer x"}).text
    assert "env:SCRIPT_NAME=/fn/env\n" in env and "env:PATH_INFO=/p/q\n" in env
    assert "env:SERVER_PORT=%d\n" % server.port in env
    assert "AUTHORIZATION" not in env


def test_pinned_version_and_rollback(server: Server, modules_dir: Path) -> None:
    assert server.deploy("pinned", (modules_dir / "hello_handler.wasm").read_bytes()).status_code == 201
    assert server.deploy("pinned", (modules_dir / "hello_wagi.wasm").read_bytes()).status_code == 201
    assert server.client.get("/fn/pinned").content == b"Hello from WAGI\n"
    r = server.client.get("/fn/pinned@1/")
    assert r.content == b"Hello, world!\n" and r.headers["x-wasmhost-version"] == "1"
    assert server.client.get("/fn/pinned@9").json()["error"]["code"] == "not_found"
    assert server.client.get("/fn/pinned@zero").json()["error"]["code"] == "bad_request"
    r = server.client.post("/v1/functions/pinned/rollback", json={"version": 1})
    assert r.status_code == 200 and r.json()["version"] == 1
    assert server.client.get("/fn/pinned").content == b"Hello, world!\n"
    info = server.client.get("/v1/functions/pinned").json()
    assert info["active_version"] == 1 and [v["version"] for v in info["versions"]] == [1, 2]


def test_patch_applies_from_next_call(server: Server, modules_dir: Path) -> None:
    assert server.deploy("loop", (modules_dir / "hostile/infinite_loop.wasm").read_bytes(),
                         fuel=100000).status_code == 201
    r = server.client.get("/fn/loop")
    assert r.status_code == 504 and r.json()["error"]["code"] == "fuel_exhausted"
    r = server.client.patch("/v1/functions/loop", json={"limits": {"fuel": 2_000_000_000, "timeout_ms": 50}})
    assert r.status_code == 200 and r.json()["limits"]["timeout_ms"] == 50
    r = server.client.get("/fn/loop")
    assert r.status_code == 504 and r.json()["error"]["code"] == "timeout"
    r = server.client.patch("/v1/functions/loop", json={"limits": {"memory_mb": 10**6}})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"


GUEST_ERRORS = [
    ("hostile/infinite_loop", {"fuel": 100000}, 504, "fuel_exhausted"),
    ("hostile/memory_bomb", {"memory_mb": 4}, 502, "memory_limit"),
    ("hostile/unreachable", {}, 502, "trap"),
    ("hostile/malformed_response", {}, 502, "bad_response"),
    ("hostile/nonzero_exit", {}, 502, "nonzero_exit"),
    ("hostile/oversized_output", {"memory_mb": 32}, 413, "too_large"),
]


@pytest.mark.parametrize("module,params,status,code", GUEST_ERRORS, ids=[c for *_, c in GUEST_ERRORS])
def test_guest_errors_over_http(server: Server, modules_dir: Path, module, params, status, code) -> None:
    name = "h-" + module.split("/")[1].replace("_", "-")
    assert server.deploy(name, (modules_dir / f"{module}.wasm").read_bytes(), **params).status_code == 201
    r = server.client.get(f"/fn/{name}")
    assert r.status_code == status
    body = r.json()["error"]
    assert body["code"] == code and body["message"]
    assert body["request_id"] == r.headers["x-request-id"]
    assert "server-timing" in r.headers
    assert "Traceback" not in r.text and "/tmp" not in r.text
    assert server.client.get("/fn/hello").status_code == 200  # the server carries on


def test_deploy_errors_over_http(server: Server, modules_dir: Path) -> None:
    cases = [
        (server.deploy("bad", (modules_dir / "hostile/invalid_bytes.wasm").read_bytes()), 400, "invalid_module"),
        (server.deploy("bad", (modules_dir / "hostile/unknown_import.wasm").read_bytes()), 400, "invalid_module"),
        (server.deploy("Bad_Name", b"\0asm"), 400, "bad_request"),
        (server.deploy("bad", (modules_dir / "hello_handler.wasm").read_bytes(), fuel=-1), 400, "bad_request"),
        (server.deploy("bad", b"\0asm" + b"\0" * (5 * 1024 * 1024)), 413, "too_large"),
        (server.client.put("/v1/functions/bad", content=b"x", headers={"content-type": "text/plain"}),
         400, "bad_request"),
        (server.client.get("/fn/nope"), 404, "not_found"),
        (server.client.get("/v1/functions/nope"), 404, "not_found"),
        (server.client.delete("/v1/functions/nope"), 404, "not_found"),
        (server.client.get("/no/such/route"), 404, "not_found"),
        (server.client.post("/v1/functions"), 405, "method_not_allowed"),
    ]
    for response, status, code in cases:
        assert response.status_code == status, (response.request.url, response.text)
        assert response.json()["error"]["code"] == code, response.text
    assert "env.launch_missiles" in cases[1][0].json()["error"]["message"]
    assert "bad" not in [f["name"] for f in server.client.get("/v1/functions").json()["functions"]]


def test_oversized_request_body_is_refused_early(server: Server) -> None:
    big = b"x" * (300 * 1024)
    r = server.client.post("/fn/echo", content=big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"

    def chunks():
        for _ in range(300):
            yield b"y" * 1024

    r = server.client.post("/fn/echo", content=chunks())  # chunked: no Content-Length to check first
    assert r.status_code == 413
    assert server.client.post("/fn/echo", content=b"ok").status_code == 200


def test_multipart_upload_with_config(server: Server, modules_dir: Path) -> None:
    config = {"config": {"GREETING": "hi"}, "limits": {"fuel": 12345}}
    r = server.client.put("/v1/functions/multi", files={
        "module": ("echo.wasm", (modules_dir / "echo_handler.wasm").read_bytes(), "application/wasm"),
        "config": (None, json.dumps(config), "application/json")})
    assert r.status_code == 201, r.text
    assert r.json()["limits"]["fuel"] == 12345 and r.json()["config"] == {"GREETING": "hi"}
    seen = msgpack.unpackb(server.client.post("/fn/multi", content=b"").content, raw=False)
    assert seen["config"] == {"GREETING": "hi"}
    r = server.client.put("/v1/functions/multi", files={"config": (None, "{}")})
    assert r.status_code == 400 and "module" in r.json()["error"]["message"]
    r = server.client.put("/v1/functions/multi", files={"module": ("m.wasm", b"\0asm\1\0\0\0"),
                                                        "config": (None, "not json")})
    assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]


def test_logs_are_found_by_request_id(server: Server) -> None:
    r = server.client.get("/fn/hello", headers={"x-request-id": "find-me-123"})
    assert r.headers["x-request-id"] == "find-me-123"
    logs = server.client.get("/v1/functions/hello/logs", params={"request_id": "find-me-123"}).json()
    [entry] = logs["invocations"]
    assert entry["logs"] == ["hello called"] and entry["status"] == 200 and entry["tier"] == "memory"
    recent = server.client.get("/v1/functions/hello/logs", params={"limit": 3}).json()["invocations"]
    assert 1 <= len(recent) <= 3
    assert server.client.get("/v1/functions/hello/logs", params={"limit": 0}).status_code == 400


def test_ops_routes(server: Server) -> None:
    assert server.client.get("/healthz").json() == {"status": "ok"}
    ready = server.client.get("/readyz").json()
    assert ready["status"] == "ready" and all(ready["checks"].values())
    server.client.get("/fn/hello")
    text = server.client.get("/metrics").text
    for metric in ("wasmhost_invocations_total", "wasmhost_invocation_duration_seconds_bucket",
                   "wasmhost_cache_tier_total", "wasmhost_compile_seconds_total", "wasmhost_invocations_in_flight",
                   "wasmhost_queue_depth", "wasmhost_process_resident_memory_bytes"):
        assert metric in text, metric
    assert 'wasmhost_invocations_total{function="hello",outcome="ok"}' in text
    info = server.client.get("/v1/info").json()
    assert info["engine"]["allocator"] in ("pooling", "on-demand") and info["limits"]["maximum"]["memory_mb"] == 128


def test_openapi_lists_every_route(server: Server) -> None:
    from starlette.routing import Route

    from wasmhost.http.openapi import build_openapi
    spec = server.client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert spec == json.loads(json.dumps(build_openapi()))
    # Every route of the real app, with every method, is in the document.
    import wasmhost.http.app as app_module
    from wasmhost.host import Host
    from wasmhost.settings import Settings
    with Host(Settings(data_dir=server.data_dir.parent / "openapi-data")) as host:
        app = app_module.create_app(host, None)
        from wasmhost.http.openapi import INVOKE_METHODS
        for path in ("/fn/{name}", "/fn/{name}/{path}"):  # served by FunctionApp, ahead of the router
            assert set(spec["paths"][path]) == set(INVOKE_METHODS)
        for route in app.routes:
            assert isinstance(route, Route)
            path = route.path.replace("{path:path}", "{path}")
            assert path in spec["paths"], path
            for method in route.methods or ():
                if method == "HEAD" and "GET" in route.methods:
                    continue  # Starlette answers HEAD for every GET route; OpenAPI leaves it implied
                assert method.lower() in spec["paths"][path], (path, method)


def test_delete(server: Server, modules_dir: Path) -> None:
    assert server.deploy("gone", (modules_dir / "hello_handler.wasm").read_bytes()).status_code == 201
    assert server.client.get("/fn/gone").status_code == 200
    assert server.client.delete("/v1/functions/gone").status_code == 204
    assert server.client.get("/fn/gone").status_code == 404


def test_restart_serves_first_call_from_disk(tmp_path: Path, modules_dir: Path) -> None:
    srv = Server(tmp_path / "data")
    with srv:
        assert srv.deploy("hello", (modules_dir / "hello_handler.wasm").read_bytes()).status_code == 201
        assert 'desc="memory"' in srv.client.get("/fn/hello").headers["server-timing"]
    with srv:
        r = srv.client.get("/fn/hello")
        assert r.status_code == 200 and 'desc="disk"' in r.headers["server-timing"]
        assert 'desc="memory"' in srv.client.get("/fn/hello").headers["server-timing"]


def test_auth(tmp_path: Path, modules_dir: Path) -> None:
    with Server(tmp_path / "data", token=TOKEN) as srv:
        wasm = (modules_dir / "hello_handler.wasm").read_bytes()
        good = {"authorization": f"Bearer {TOKEN}"}
        for bad in ({}, {"authorization": "Bearer wrong"}, {"authorization": f"Basic {TOKEN}"},
                    {"authorization": "Bearer"}):
            calls = [srv.client.put("/v1/functions/x", content=wasm, headers={**bad, "content-type": "application/wasm"}),
                     srv.client.get("/v1/functions", headers=bad), srv.client.get("/v1/functions/x", headers=bad),
                     srv.client.patch("/v1/functions/x", json={}, headers=bad),
                     srv.client.post("/v1/functions/x/rollback", headers=bad),
                     srv.client.delete("/v1/functions/x", headers=bad),
                     srv.client.get("/v1/functions/x/logs", headers=bad), srv.client.get("/v1/info", headers=bad)]
            for r in calls:
                assert r.status_code == 401, (r.request.method, r.request.url)
                assert r.json()["error"]["code"] == "unauthorized"
                assert TOKEN not in r.text
                assert r.headers["www-authenticate"].startswith("Bearer")
        r = srv.client.put("/v1/functions/x", content=wasm, headers={**good, "content-type": "application/wasm"})
        assert r.status_code == 201
        assert srv.client.get("/fn/x").status_code == 200  # calling functions needs no token
        assert srv.client.get("/v1/functions", headers=good).status_code == 200
        assert srv.client.get("/healthz").status_code == 200
    assert TOKEN not in srv.log()


def test_non_loopback_bind_without_token_is_refused(tmp_path: Path) -> None:
    srv = Server(tmp_path / "data", host="0.0.0.0")
    srv.start(wait=False)
    assert srv.proc is not None
    code = srv.proc.wait(timeout=60)
    assert code != 0
    assert "refusing to serve on 0.0.0.0 without an admin token" in srv.log()
    assert "Traceback" not in srv.log()


def test_flood_gets_503_with_retry_after(tmp_path: Path, modules_dir: Path) -> None:
    with Server(tmp_path / "data", env={"WASMHOST_MAX_CONCURRENCY": "1", "WASMHOST_MAX_QUEUE": "1",
                                        "WASMHOST_POOL_INSTANCES": "4"}) as srv:
        assert srv.deploy("slow", (modules_dir / "hostile/infinite_loop.wasm").read_bytes(),
                          fuel=20_000_000_000, timeout_ms=1500).status_code == 201

        def call(_: int) -> httpx.Response:
            with httpx.Client(base_url=srv.url, timeout=30) as c:
                return c.get("/fn/slow")

        with ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(call, range(8)))
        statuses = sorted(r.status_code for r in responses)
        assert statuses.count(504) >= 1  # the ones admitted ran into their deadline
        overloaded = [r for r in responses if r.status_code == 503]
        assert len(overloaded) >= 5
        for r in overloaded:
            assert r.json()["error"]["code"] == "overloaded" and int(r.headers["retry-after"]) >= 1
        deadline = time.monotonic() + 10
        while srv.client.get("/healthz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "wasmhost_overloaded_total" in srv.client.get("/metrics").text


@pytest.mark.slow
def test_two_workers_share_deploys(tmp_path: Path, modules_dir: Path) -> None:
    with Server(tmp_path / "data", workers=2) as srv:
        assert srv.deploy("shared", (modules_dir / "hello_handler.wasm").read_bytes()).status_code == 201
        pids = set()
        for _ in range(200):
            # A fresh connection each time, so the kernel spreads them over both workers.
            with httpx.Client(base_url=srv.url, timeout=30) as c:
                r = c.get("/fn/shared")
                assert r.status_code == 200 and r.content == b"Hello, world!\n"
                pids.add(c.get("/metrics").text.count("wasmhost_process_resident_memory_bytes{"))
        # Both workers served calls: with multiprocess metrics, both report their RSS.
        metrics = srv.client.get("/metrics").text
        rss_lines = [line for line in metrics.splitlines() if line.startswith("wasmhost_process_resident_memory_bytes{")]
        assert len(rss_lines) == 2, rss_lines
        total = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                    if line.startswith('wasmhost_invocations_total{function="shared"'))
        assert total == 200


def test_odd_digits_and_numbers_are_400_not_500(server: Server) -> None:
    for r in (server.client.get("/fn/hello@%C2%B2"), server.client.get("/fn/hello@%D9%A1"),
              server.client.get("/v1/functions/hello/logs", params={"limit": "²"}),
              server.client.post("/v1/functions/hello/rollback", params={"version": "²"}),
              server.client.post("/v1/functions/hello/rollback", json={"version": "²"}),
              server.client.patch("/v1/functions/hello", content=b'{"fuel": Infinity}'),
              server.client.patch("/v1/functions/hello", json={"fuel": 1.9}),
              server.client.patch("/v1/functions/hello", content=b"[" * 100_000 + b"]" * 100_000)):
        assert r.status_code in (400, 404), (r.request.url, r.status_code, r.text)
        assert r.json()["error"]["code"] in ("bad_request", "not_found")
    r = server.client.get("/fn/hello", headers=[(b"host", "x:\u00b2".encode())])
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"  # not a port: RFC 9112 §3.2


def test_204_drops_the_body_and_host_headers_cannot_be_spoofed(server: Server, modules_dir: Path) -> None:
    assert server.deploy("nocontent", (modules_dir / "hostile/no_content_with_body.wasm").read_bytes()).status_code == 201
    r = server.client.get("/fn/nocontent")
    assert r.status_code == 204 and r.content == b""
    assert server.client.get("/fn/hello").status_code == 200  # the connection and server are fine
    assert server.deploy("spoof", (modules_dir / "hostile/header_spoof.wasm").read_bytes()).status_code == 201
    r = server.client.get("/fn/spoof", headers={"x-request-id": "mine-1"})
    assert r.content == b"spoof\n"
    assert r.headers.get_list("x-request-id") == ["mine-1"]
    assert r.headers.get_list("x-wasmhost-version") == ["1"]
    assert len(r.headers.get_list("server-timing")) == 1 and "evil" not in r.headers["server-timing"]


def test_wagi_header_bytes_reach_the_wire_unchanged(server: Server) -> None:
    r = server.client.get("/fn/env", headers=[(b"x-raw", "caf\u00e9".encode())])
    assert r.status_code == 200
    # HTTP_X_RAW went in as the UTF-8 bytes of "café" and is echoed in the body untouched.
    assert "env:HTTP_X_RAW=café\n".encode() in r.content


def test_a_percent_in_the_name_segment_is_refused(server: Server) -> None:
    """The name segment is never decoded (that decoded the rest of the path too, and WAGI then
    decoded it again: tests/test_redteam.py)."""
    r = server.client.post("/fn/echo%2Fx/y", content=b"")
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"
    r = server.client.post("/fn/echo/x%2Fy", content=b"")
    assert r.status_code == 200 and msgpack.unpackb(r.content, raw=False)["path"] == "/x%2Fy"


def test_config_may_be_sent_as_a_file_part(server: Server, modules_dir: Path) -> None:
    r = server.client.put("/v1/functions/filecfg", files={
        "module": ("m.wasm", (modules_dir / "echo_handler.wasm").read_bytes(), "application/wasm"),
        "config": ("c.json", json.dumps({"config": {"A": "1"}}), "application/json")})
    assert r.status_code == 201, r.text
    assert r.json()["config"] == {"A": "1"}
