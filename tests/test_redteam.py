"""The red-team findings of issue 15, each as the attack itself against a real `wasmhost serve`.

Each test sends what the attacker sent and checks the documented answer, and that the server
still serves a good call afterwards. The memory and disk attacks, which need servers of their
own settings, are in tests/test_redteam_memory.py and tests/test_storage_full.py.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from pathlib import Path

import httpx
import msgpack
import pytest

from .server import Server


@pytest.fixture(scope="module")
def server(tmp_path_factory, modules_dir: Path):
    data = tmp_path_factory.mktemp("redteam") / "data"
    with Server(data, env={"WASMHOST_DEFAULT_FUEL": "50000000", "WASMHOST_MAX_MEMORY_MB": "128",
                           "WASMHOST_POOL_INSTANCES": "40"}) as srv:
        for name, module in [("hello", "hello_handler"), ("echo", "echo_handler"), ("env", "wagi_env"),
                             ("exit", "hostile/exit_status"), ("two-types", "hostile/two_content_types"),
                             ("two-types-wagi", "hostile/two_content_types_wagi")]:
            r = srv.deploy(name, (modules_dir / f"{module}.wasm").read_bytes())
            assert r.status_code == 201, r.text
        yield srv
        assert srv.proc is not None and srv.proc.poll() is None, "the server died"
        assert "Traceback" not in srv.log(), srv.log()


def assert_good(server: Server) -> None:
    r = server.client.get("/fn/hello")
    assert r.status_code == 200 and r.content == b"Hello, world!\n", (r.status_code, r.text[:300])


def error(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, (r.status_code, r.text[:500])
    body = r.json()["error"]
    assert body["code"] == code, body
    return body


def raw_exchange(server: Server, request: bytes) -> bytes:
    """Send bytes as they are (no client normalises the path) and read the answer to EOF."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def cgi_env(body: bytes) -> dict[str, str]:
    """wagi_env's `env:KEY=VALUE` lines."""
    out = {}
    for line in body.decode("utf-8", "replace").splitlines():
        if line.startswith("env:"):
            key, _, value = line[4:].partition("=")
            out[key] = value
    return out


# ---- finding 3: paths decoded twice --------------------------------------------------------

def get_raw_path(server: Server, path: str) -> tuple[int, bytes]:
    answer = raw_exchange(server, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                                  "Connection: close\r\n\r\n".encode())
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.mark.parametrize("path", ["/fn/env%2F%252e%252e/admin", "/fn/env%2f..%2fadmin", "/fn/en%76/x",
                                  "/fn/env%00/x", "/fn/%65nv"])
def test_a_percent_in_the_name_segment_is_refused_not_decoded(server: Server, path: str) -> None:
    """The attack: `/fn/wagi-env%2F%252e%252e/admin` reached the guest as PATH_INFO `/../admin`
    (the name segment's decoding decoded the rest, and WAGI decoded it again)."""
    status, body = get_raw_path(server, path)
    assert status == 400, (status, body[:300])
    assert b'"bad_request"' in body and b"PATH_INFO" not in body
    assert_good(server)


def test_wagi_decodes_path_info_exactly_once(server: Server) -> None:
    status, body = get_raw_path(server, "/fn/env/%252e%252e/admin?q=1")
    assert status == 200, body[:300]
    env = cgi_env(body)
    assert env["PATH_INFO"] == "/%2e%2e/admin"
    assert env["X_RAW_PATH_INFO"] == "/%252e%252e/admin"
    assert env["SCRIPT_NAME"] == "/fn/env"
    assert env["X_FULL_URL"] == f"http://127.0.0.1:{server.port}/fn/env/%252e%252e/admin?q=1"


def test_a_path_that_decodes_to_nul_is_refused_for_wagi(server: Server) -> None:
    """`%00` made PATH_INFO vanish from the guest's environment (it cannot hold NUL)."""
    status, body = get_raw_path(server, "/fn/env/admin%00.txt")
    assert status == 400 and b'"bad_request"' in body and b"NUL" in body, (status, body[:300])
    # A handler gets the path as received, %00 included: nothing is decoded for it.
    status, body = get_raw_path(server, "/fn/echo/admin%00.txt")
    assert status == 200 and msgpack.unpackb(body, raw=False)["path"] == "/admin%00.txt"


def test_a_handler_gets_the_path_exactly_as_received(server: Server) -> None:
    status, body = get_raw_path(server, "/fn/echo/%252e%252e/a%2Fb/%E2%82%AC")
    assert status == 200
    assert msgpack.unpackb(body, raw=False)["path"] == "/%252e%252e/a%2Fb/%E2%82%AC"


# ---- finding 4: limits of thousands of digits, signs, spaces, repeats ------------------------

BAD_LIMITS = ["9" * 5000, "1" * 19, "+5", " 5 ", "5 ", "-5", "0x10", "1_000", "\u0665", "5.0", ""]


@pytest.mark.parametrize("raw", BAD_LIMITS, ids=[f"{len(v)}:{v[:6]!r}" for v in BAD_LIMITS])
def test_a_limit_that_is_not_plain_digits_is_400_everywhere(server: Server, modules_dir: Path, raw: str) -> None:
    before = server.client.get("/v1/functions/hello").json()
    wasm = (modules_dir / "hello_handler.wasm").read_bytes()
    answers = [
        server.deploy("hello", wasm, fuel=raw),
        server.client.patch("/v1/functions/hello", params={"timeout_ms": raw}),
        server.client.patch("/v1/functions/hello", json={"memory_mb": raw}),
        server.client.patch("/v1/functions/hello", json={"limits": {"fuel": raw}}),
    ]
    for r in answers:
        body = error(r, 400, "bad_request")
        assert len(body["message"]) < 300
    assert server.client.get("/v1/functions/hello").json() == before  # nothing changed
    assert_good(server)


def test_a_json_number_of_thousands_of_digits_is_400(server: Server) -> None:
    for body in (b'{"fuel": ' + b"9" * 5000 + b"}", b'{"fuel": ' + b"9" * 4000 + b"}",
                 b'{"fuel": -' + b"9" * 4000 + b"}"):
        r = server.client.patch("/v1/functions/hello", content=body)
        assert len(error(r, 400, "bad_request")["message"]) < 300


def test_a_repeated_parameter_or_json_key_is_refused_not_last_wins(server: Server, modules_dir: Path) -> None:
    before = server.client.get("/v1/functions/hello").json()
    wasm = (modules_dir / "hello_handler.wasm").read_bytes()
    for r in (server.client.put("/v1/functions/hello?fuel=1000&fuel=99999999", content=wasm,
                                headers={"content-type": "application/wasm"}),
              server.client.patch("/v1/functions/hello?timeout_ms=100&timeout_ms=200"),
              server.client.patch("/v1/functions/hello", content=b'{"fuel": 1000, "fuel": 99999999}'),
              server.client.patch("/v1/functions/hello", content=b'{"limits": {"fuel": 1, "fuel": 2}}'),
              server.client.post("/v1/functions/hello/rollback?version=1&version=2"),
              server.client.get("/v1/functions/hello/logs?limit=1&limit=2")):
        assert "more than once" in error(r, 400, "bad_request")["message"]
    assert server.client.get("/v1/functions/hello").json() == before


# ---- finding 6: exit statuses of 126 and more ----------------------------------------------

@pytest.mark.parametrize("status", [126, 127, 255, 256, -1, 2**31 - 1, 3])
def test_every_exit_status_is_nonzero_exit_with_the_status_passed(server: Server, status: int) -> None:
    r = server.client.post("/fn/exit", content=struct.pack("<i", status))
    body = error(r, 502, "nonzero_exit")
    assert body["exit_code"] == status
    r = server.client.post("/fn/exit", content=struct.pack("<i", 0))
    assert r.status_code == 200 and r.content == b""


# ---- finding 2: concurrent changes must compose, not undo each other --------------------------

LIMIT_NAMES = ("fuel", "timeout_ms", "memory_mb")


def test_concurrent_partial_changes_compose(server: Server, modules_dir: Path) -> None:
    """The attack: three clients PATCH different limits (and a fourth the config) while a fifth
    deploys new code with `?timeout_ms=`. Before, PATCH merged onto the version it had read and
    wrote the whole onto whatever was active at commit: 106 of 120 versions changed a field their
    PATCH did not name. Now every version must be its predecessor plus exactly what its own
    acknowledged change named (a PUT names everything: what it does not give takes the default)."""
    from concurrent.futures import ThreadPoolExecutor

    wasm = (modules_dir / "echo_handler.wasm").read_bytes()
    first = server.deploy("race", wasm, fuel=1_000_001, timeout_ms=1001, memory_mb=17)
    assert first.status_code == 201, first.text
    defaults = server.client.get("/v1/info").json()["limits"]["default"]
    acks: dict[int, tuple[str, dict]] = {first.json()["version"]: ("put", {"fuel": 1_000_001, "timeout_ms": 1001,
                                                                           "memory_mb": 17, "config": {}})}

    def patcher(field: str, values: list) -> list[tuple[int, str, dict]]:
        out = []
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for value in values:
                r = client.patch("/v1/functions/race", json={field: value})
                assert r.status_code == 200, r.text
                assert r.headers["etag"] == f'"{r.json()["version"]}"'
                out.append((r.json()["version"], "patch", {field: value}))
        return out

    def deployer(values: list[int]) -> list[tuple[int, str, dict]]:
        out = []
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for value in values:
                r = client.put("/v1/functions/race", params={"timeout_ms": value}, content=wasm,
                               headers={"content-type": "application/wasm"})
                assert r.status_code == 201, r.text
                out.append((r.json()["version"], "put", {"timeout_ms": value, "fuel": defaults["fuel"],
                                                          "memory_mb": defaults["memory_mb"], "config": {}}))
        return out

    jobs = [("fuel", [2_000_000 + i for i in range(30)]), ("timeout_ms", [2000 + i for i in range(30)]),
            ("memory_mb", [20 + i for i in range(30)]), ("config", [{"N": str(i)} for i in range(30)])]
    with ThreadPoolExecutor(5) as pool:
        futures = [pool.submit(patcher, field, values) for field, values in jobs]
        futures.append(pool.submit(deployer, [500 + i for i in range(8)]))
        for future in futures:
            for version, kind, named in future.result():
                assert version not in acks, "two acknowledged changes got one version number"
                acks[version] = (kind, named)

    info = server.client.get("/v1/functions/race").json()
    versions = {v["version"]: v for v in info["versions"]}
    assert sorted(versions) == sorted(acks), "every version is an acknowledged change, and every change a version"
    numbers = sorted(versions)
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), "numbers without gaps"
    assert info["active_version"] == numbers[-1]

    def fields(v: dict) -> dict:
        return {**v["limits"], "config": v["config"]}

    for previous, number in zip(numbers, numbers[1:]):
        kind, named = acks[number]
        expected = dict(named) if kind == "put" else {**fields(versions[previous]), **named}
        assert fields(versions[number]) == expected, (number, kind, named, fields(versions[previous]))
    # So the active version holds, for each field, the value of the last change that named it.
    r = server.client.post("/fn/race", content=b"x")
    assert r.status_code == 200 and r.headers["x-wasmhost-version"] == str(numbers[-1])


def test_if_match_makes_read_modify_write_safe(server: Server, modules_dir: Path) -> None:
    """Four clients each add 1 to a counter in the config ten times, by GET then PATCH with
    If-Match, retrying on 412: no increment is lost."""
    from concurrent.futures import ThreadPoolExecutor

    r = server.client.put("/v1/functions/counter", files={
        "module": ("m.wasm", (modules_dir / "echo_handler.wasm").read_bytes(), "application/wasm"),
        "config": (None, '{"config": {"N": "0"}}')})
    assert r.status_code == 201, r.text
    start = r.json()["version"]
    refusals = []

    def add_one_ten_times() -> None:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            done = 0
            while done < 10:
                got = client.get("/v1/functions/counter")
                n = int(got.json()["active"]["config"]["N"])
                r = client.patch("/v1/functions/counter", json={"config": {"N": str(n + 1)}},
                                 headers={"if-match": got.headers["etag"]})
                if r.status_code == 412:
                    assert r.json()["error"]["code"] == "precondition_failed"
                    refusals.append(r.json()["error"]["active_version"])
                    continue
                assert r.status_code == 200, r.text
                done += 1

    with ThreadPoolExecutor(4) as pool:
        for future in [pool.submit(add_one_ten_times) for _ in range(4)]:
            future.result()
    info = server.client.get("/v1/functions/counter").json()
    assert info["active"]["config"]["N"] == "40"
    assert info["active_version"] == start + 40  # no write went through without its precondition
    assert all(isinstance(v, int) and v > start for v in refusals)


def test_preconditions_refuse_and_change_nothing(server: Server, modules_dir: Path) -> None:
    wasm = (modules_dir / "hello_handler.wasm").read_bytes()
    put = server.deploy("cond", wasm)
    assert put.status_code == 201
    tag = put.headers["etag"]
    assert tag == f'"{put.json()["version"]}"' == server.client.get("/v1/functions/cond").headers["etag"]
    before = server.client.get("/v1/functions/cond").json()
    stale = f'"{put.json()["version"] - 1}"'
    for r in (server.client.patch("/v1/functions/cond", json={"fuel": 5}, headers={"if-match": stale}),
              server.client.patch("/v1/functions/cond", json={"fuel": 5}, headers={"if-match": "W/" + tag}),
              server.client.patch("/v1/functions/cond", json={"private": False}, headers={"if-match": '"x"'}),
              server.client.put("/v1/functions/cond", content=wasm, headers={"content-type": "application/wasm",
                                                                            "if-match": stale}),
              server.client.put("/v1/functions/cond", content=wasm, headers={"content-type": "application/wasm",
                                                                            "if-none-match": "*"}),
              server.client.post("/v1/functions/cond/rollback", headers={"if-match": stale}),
              server.client.delete("/v1/functions/cond", headers={"if-match": stale}),
              server.client.patch("/v1/functions/nobody", json={"fuel": 5}, headers={"if-match": "*"})):
        assert error(r, 412, "precondition_failed")["message"]
    for header in ({"if-match": "3 3"}, {"if-match": '"3'}, {"if-none-match": '"3"'},
                   {"if-match": "*", "if-none-match": "*"}):
        error(server.client.patch("/v1/functions/cond", json={"fuel": 5}, headers=header), 400, "bad_request")
    assert server.client.get("/v1/functions/cond").json() == before
    ok = server.client.patch("/v1/functions/cond", json={"fuel": 5}, headers={"if-match": f'"7777", {tag}'})
    assert ok.status_code == 200 and ok.headers["etag"] != tag
    created = server.client.put("/v1/functions/cond-new", content=wasm,
                                headers={"content-type": "application/wasm", "if-none-match": "*"})
    assert created.status_code == 201
    assert server.client.delete("/v1/functions/cond-new", headers={"if-match": created.headers["etag"]}).status_code == 204


# ---- finding 7: version numbers after a delete ---------------------------------------------

def test_version_numbers_go_on_after_a_delete(server: Server, modules_dir: Path) -> None:
    """The attack: after DELETE and a new deploy, numbering restarted at 1, so a caller pinned to
    `name@1` silently got other code."""
    hello = (modules_dir / "hello_handler.wasm").read_bytes()
    echo = (modules_dir / "echo_handler.wasm").read_bytes()
    assert server.deploy("pinned", hello).json()["version"] == 1
    assert server.deploy("pinned", hello, fuel=1_000_000).json()["version"] == 2
    assert server.client.get("/fn/pinned@1").content == b"Hello, world!\n"
    assert server.client.delete("/v1/functions/pinned").status_code == 204
    assert server.deploy("pinned", echo).json()["version"] == 3
    error(server.client.get("/fn/pinned@1"), 404, "not_found")
    error(server.client.get("/fn/pinned@2"), 404, "not_found")
    assert server.client.get("/fn/pinned@3").status_code == 200


# ---- finding 7: Host, malformed requests, two Content-Types, SERVER_PROTOCOL -------------------

def answer_of(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split(" ", 2)[1]), headers, body


@pytest.mark.parametrize("host_lines", [
    "",  # HTTP/1.1 without Host
    "Host: 127.0.0.1\r\nHost: 127.0.0.1\r\n",  # two
    "Host: a\r\nHost: b\r\n",
    "Host: x y\r\n",  # not a host
    "Host: x:80:80\r\n",
    "Host: exa mple.com:8000\r\n",
    "Host: x:\u00b2\r\n",
    "Host: a/b\r\n",
], ids=["none", "two-equal", "two", "space", "two-ports", "space-port", "non-ascii-port", "slash"])
@pytest.mark.parametrize("path", ["/fn/hello", "/v1/functions", "/healthz"])
def test_a_request_without_exactly_one_valid_host_is_400(server: Server, host_lines: str, path: str) -> None:
    """RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request with no Host, more than
    one, or an invalid one (they were all served)."""
    raw = raw_exchange(server, f"GET {path} HTTP/1.1\r\n{host_lines}Connection: close\r\n\r\n".encode("utf-8"))
    status, headers, body = answer_of(raw)
    assert status == 400, raw[:300]
    assert headers["content-type"] == "application/json"
    assert b'"bad_request"' in body and b"Host" in body


def test_valid_hosts_and_http_1_0_without_host_are_served(server: Server) -> None:
    for host in ("127.0.0.1", f"127.0.0.1:{server.port}", "[::1]:8000", "example.com", "xn--bcher-kva.example",
                 "a.b-c_d~e:1", ""):
        raw = raw_exchange(server, f"GET /fn/hello HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        assert answer_of(raw)[0] == 200, (host, raw[:300])
    raw = raw_exchange(server, b"GET /fn/env HTTP/1.0\r\n\r\n")
    status, _, body = answer_of(raw)
    assert status == 200 and cgi_env(body)["SERVER_PROTOCOL"] == "HTTP/1.0"


@pytest.mark.parametrize("request_bytes", [
    b"GET /fn/hello HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"NOT A REQUEST\r\n\r\n",
    b"GET /fn/hello HTTP/9.9\r\nHost: x\r\n\r\n",
    b"GET /fn/hello HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET /fn/hello HTTP/1.1\r\nBad Header: x\r\n\r\n",
], ids=["content-length", "garbage", "version", "chunk-size", "header-name"])
def test_a_malformed_request_gets_the_json_error_shape(server: Server, request_bytes: bytes) -> None:
    """uvicorn answered these with a plain-text `Invalid HTTP request received.`."""
    status, headers, body = answer_of(raw_exchange(server, request_bytes))
    assert status == 400 and headers["content-type"] == "application/json", body[:300]
    error_body = __import__("json").loads(body)["error"]
    assert error_body["code"] == "bad_request" and error_body["message"].startswith("invalid HTTP request")
    assert headers["connection"] == "close"
    assert_good(server)


@pytest.mark.parametrize("name", ["two-types", "two-types-wagi"])
def test_two_content_types_from_a_guest_are_bad_response(server: Server, name: str) -> None:
    """A guest sent two Content-Type headers (both interfaces) and both reached the client, who
    had to guess which one the body is. It is refused: the rule of guest-sdk/ABI.md."""
    body = error(server.client.get(f"/fn/{name}"), 502, "bad_response")
    assert "Content-Type" in body["message"] or "content-type" in body["message"]


# ---- what held in the probe, and must keep holding ----------------------------------------

@pytest.mark.parametrize("request_bytes", [
    # Content-Length and Transfer-Encoding together: the classic CL.TE / TE.CL desync
    b"POST /fn/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST /fn/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
    b"POST /fn/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n0\r\n\r\n",
    b"POST /fn/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
], ids=["cl-te", "two-cl", "te-te", "obfuscated-te"])
def test_request_smuggling_is_refused(server: Server, request_bytes: bytes) -> None:
    """A request whose framing two servers could read two ways is refused, with the connection,
    so nothing after it can be read as a second request."""
    smuggled = b"GET /fn/hello HTTP/1.1\r\nHost: x\r\n\r\n"
    raw = raw_exchange(server, request_bytes + smuggled)
    status, headers, _ = answer_of(raw)
    assert status == 400 and headers.get("connection") == "close", raw[:300]
    assert raw.count(b"HTTP/1.1 ") == 1, "a second (smuggled) request was answered"


def test_redeploys_under_load_answer_every_call(server: Server, modules_dir: Path) -> None:
    """Calls during 20 redeploys (alternating two modules): every one answered 200 by one of them."""
    from concurrent.futures import ThreadPoolExecutor

    hello = (modules_dir / "hello_handler.wasm").read_bytes()
    other = (modules_dir / "echo_handler.wasm").read_bytes()
    assert server.deploy("flip", hello).status_code == 201
    done = threading.Event()

    def caller() -> list[int]:
        statuses = []
        with httpx.Client(base_url=server.url, timeout=30) as client:
            while not done.is_set():
                statuses.append(client.post("/fn/flip", content=b"x").status_code)
        return statuses

    with ThreadPoolExecutor(5) as pool:
        callers = [pool.submit(caller) for _ in range(4)]
        for i in range(20):
            assert server.deploy("flip", other if i % 2 == 0 else hello).status_code == 201
        done.set()
        statuses = [s for f in callers for s in f.result()]
    assert statuses and set(statuses) == {200}, sorted(set(statuses))


def test_sigterm_answers_the_calls_in_flight(tmp_path: Path, modules_dir: Path) -> None:
    """SIGTERM while calls run: each gets its whole answer (here the sleeper's own 504 at its
    800 ms deadline), then the server exits."""
    import signal
    from concurrent.futures import ThreadPoolExecutor

    srv = Server(tmp_path / "data").start()
    try:
        assert srv.deploy("nap", (modules_dir / "hostile/sleeper.wasm").read_bytes(), timeout_ms=800).status_code == 201

        def call() -> tuple[int, str]:
            with httpx.Client(base_url=srv.url, timeout=30) as client:
                r = client.get("/fn/nap")
                return r.status_code, r.json()["error"]["code"]

        with ThreadPoolExecutor(4) as pool:
            calls = [pool.submit(call) for _ in range(4)]
            time.sleep(0.3)  # all four are sleeping in the guest
            assert srv.proc is not None
            srv.proc.send_signal(signal.SIGTERM)
            assert [f.result() for f in calls] == [(504, "timeout")] * 4
        # uvicorn shuts down gracefully, then ends by the signal it was sent (re-raised)
        assert srv.proc.wait(timeout=30) in (0, -signal.SIGTERM)
        assert "Traceback" not in srv.log(), srv.log()
    finally:
        srv.stop()
        srv.client.close()
