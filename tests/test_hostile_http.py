"""The hostile catalogue over HTTP, against a real `wasmhost serve` subprocess.

Every case deploys a hostile module (or sends a hostile request), checks the
documented outcome -- the error code and HTTP status of `wasmhost/errors.py`,
within the limit that should stop it -- and then calls a good function, which
must still answer. One server serves the whole module; its limits are small
(below) so that every limit is reached quickly.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest
import wasmtime

from .server import Server

SECRET = "hostile-secret-value-7f3a9c"  # in the server's environment; no guest may see it
MIB = 1024 * 1024
LIMITS = {
    "WASMHOST_DEFAULT_FUEL": "50000000",
    "WASMHOST_DEFAULT_TIMEOUT_MS": "2000",
    "WASMHOST_DEFAULT_MEMORY_MB": "16",
    "WASMHOST_MAX_MEMORY_MB": "128",
    "WASMHOST_MAX_REQUEST_BYTES": str(256 * 1024),
    "WASMHOST_MAX_RESPONSE_BYTES": str(1 * MIB),
    "WASMHOST_BODY_TIMEOUT_S": "5",  # the default is 30: short here, so the slow-drip cut-off test is quick
    "WASMHOST_MAX_MODULE_BYTES": str(8 * MIB),
    "WASMHOST_MAX_LOG_BYTES": "4096",
    "WASMHOST_POOL_INSTANCES": "40",
    "WASMHOST_MAX_CONCURRENCY": "8",
}
MAX_FUEL = 20_000_000_000  # Settings().max_fuel (not overridden above)
TIMES: dict[str, float] = {}  # case -> slowest answer seen, printed at the end (pytest -s) for docs/SECURITY.md


@pytest.fixture(scope="module")
def server(tmp_path_factory, modules_dir: Path):
    data = tmp_path_factory.mktemp("hostile-http") / "data"
    with Server(data, env={**LIMITS, "HOSTILE_SECRET": SECRET}) as srv:
        r = srv.deploy("good", (modules_dir / "hello_handler.wasm").read_bytes())
        assert r.status_code == 201, r.text
        yield srv
        for case_id, seconds in sorted(TIMES.items()):
            print(f"hostile-timing {case_id} {seconds * 1000:.0f} ms")
        assert srv.proc is not None and srv.proc.poll() is None, "the server died"
        assert "Traceback" not in srv.log(), srv.log()


def assert_good(server: Server) -> None:
    """The next request to a good function still succeeds."""
    r = server.client.get("/fn/good")
    assert r.status_code == 200 and r.content == b"Hello, world!\n", (r.status_code, r.text[:300])


def assert_clean(r: httpx.Response) -> None:
    """No host detail in an answer: paths, tracebacks, the server's environment."""
    text = r.text
    assert "Traceback" not in text and SECRET not in text
    for fragment in ("/tmp/", "/work/", "/home/", ".py", "site-packages"):
        assert fragment not in text, (fragment, text[:500])


def error_of(r: httpx.Response) -> dict[str, Any]:
    body = r.json()["error"]
    assert body["message"] and body["request_id"] == r.headers["x-request-id"]
    return body


# ---- guest faults at invoke ---------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    module: str  # under modules/build/
    limits: dict[str, int]
    status: int
    code: str | None  # None: success
    trap_code: str | None = None
    max_seconds: float = 5.0  # the answer comes within this (a bound, not a speed figure)
    path: str = ""
    check: Callable[[httpx.Response], None] | None = field(default=None, compare=False)


INVOKE_CASES: dict[str, Case] = {
    # Infinite loop: fuel, then the wall clock with fuel too high to matter.
    "loop-fuel": Case("hostile/infinite_loop", {"fuel": 1_000_000}, 504, "fuel_exhausted", max_seconds=2),
    "loop-wall-clock": Case("hostile/infinite_loop", {"fuel": MAX_FUEL, "timeout_ms": 300}, 504, "timeout",
                            max_seconds=2),
    "log-spin-wall-clock": Case("hostile/log_spin", {"fuel": MAX_FUEL, "timeout_ms": 300}, 504, "timeout",
                                max_seconds=2),
    "log-spin-fuel": Case("hostile/log_spin", {"fuel": 1_000_000}, 504, "fuel_exhausted", max_seconds=2),
    "sleep-wall-clock": Case("hostile/sleeper", {"timeout_ms": 300}, 504, "timeout", max_seconds=2),
    # Memory.
    "memory-grow-bomb": Case("hostile/memory_bomb", {"memory_mb": 8}, 502, "memory_limit", max_seconds=3),
    "initial-memory-over-cap": Case("hostile/initial_memory_over_cap", {"memory_mb": 16}, 502, "memory_limit"),
    "table-grow-bomb": Case("hostile/table_bomb", {}, 502, "trap", "unreachable"),
    # Every trap kind.
    "deep-recursion": Case("hostile/deep_recursion", {}, 502, "trap", "stack_overflow"),
    "unreachable": Case("hostile/unreachable", {}, 502, "trap", "unreachable"),
    "oob-memory": Case("hostile/oob_read", {}, 502, "trap", "memory_out_of_bounds"),
    "div-zero": Case("hostile/div_zero", {}, 502, "trap", "integer_division_by_zero"),
    "int-overflow": Case("hostile/int_overflow", {}, 502, "trap", "integer_overflow"),
    "bad-conversion": Case("hostile/bad_conversion", {}, 502, "trap", "bad_conversion_to_integer"),
    "indirect-null": Case("hostile/indirect_null", {}, 502, "trap", "indirect_call_to_null"),
    "indirect-type-mismatch": Case("hostile/indirect_mismatch", {}, 502, "trap", "bad_signature"),
    "table-oob": Case("hostile/table_oob", {}, 502, "trap", "table_out_of_bounds"),
    # Output floods and broken responses.
    "wagi-stdout-flood": Case("hostile/stdout_flood", {"fuel": MAX_FUEL}, 413, "too_large", max_seconds=3),
    "handler-response-over-limit": Case("hostile/oversized_output", {"memory_mb": 32}, 413, "too_large"),
    "malformed-response": Case("hostile/malformed_response", {}, 502, "bad_response"),
    "wrong-type-response": Case("hostile/wrong_type_response", {}, 502, "bad_response"),
    "bad-status-response": Case("hostile/bad_status_response", {}, 502, "bad_response"),
    "bad-pointer": Case("hostile/bad_pointer", {}, 502, "bad_response"),
    "control-char-header": Case("hostile/control_char_header", {}, 502, "bad_response"),
    "nonzero-exit": Case("hostile/nonzero_exit", {}, 502, "nonzero_exit"),
    # Floods that must succeed, truncated.
    "log-flood": Case("hostile/log_flood", {"fuel": MAX_FUEL, "timeout_ms": 10_000}, 200, None, max_seconds=10),
    "iovec-flood": Case("hostile/iovec_flood", {}, 200, None),
}


@pytest.mark.parametrize("case_id", list(INVOKE_CASES))
def test_guest_fault_is_classified_and_the_server_carries_on(server: Server, modules_dir: Path, case_id: str) -> None:
    case = INVOKE_CASES[case_id]
    name = "x-" + case_id
    r = server.deploy(name, (modules_dir / f"{case.module}.wasm").read_bytes(), **case.limits)
    assert r.status_code == 201, r.text
    for _ in range(2):  # twice: the second call may take another path (inline, pool, memory tier)
        started = time.monotonic()
        r = server.client.get(f"/fn/{name}{case.path}")
        elapsed = time.monotonic() - started
        assert r.status_code == case.status, (r.status_code, r.text[:500])
        assert elapsed < case.max_seconds, elapsed
        assert_clean(r)
        if case.code is not None:
            body = error_of(r)
            assert body["code"] == case.code, body
            if case.trap_code is not None:
                assert body.get("trap_code") == case.trap_code, body
        if case.check is not None:
            case.check(r)
        TIMES[case_id] = max(TIMES.get(case_id, 0.0), elapsed)
        assert_good(server)
    if case.code is None and case.module.endswith("_flood"):
        logs = server.client.get(f"/v1/functions/{name}/logs", params={"limit": 1}).json()["invocations"]
        assert logs[0]["truncated"] is True, logs[0]
        assert len("\n".join(logs[0]["logs"]).encode()) <= 3 * 4096
    if case.code in ("fuel_exhausted", "timeout", "memory_limit", "too_large"):
        # The message names the limit that stopped the guest.
        message = error_of(r)["message"]
        expected = {"fuel_exhausted": "fuel", "timeout": "ms deadline", "memory_limit": "MiB",
                    "too_large": "limit"}[case.code]
        assert expected in message, message


# ---- refused at deploy -------------------------------------------------------------------

DEPLOY_CASES: dict[str, tuple[str, dict[str, int], int, str, str]] = {
    # case: (module, limits, HTTP status, code, a fragment the message must contain)
    "huge-initial-memory": ("hostile/huge_initial_memory", {}, 400, "invalid_module",
                            "initial memory of 1024 MiB (16384 pages) exceeds the server maximum of 128 MiB"),
    "huge-table": ("hostile/huge_table", {}, 400, "invalid_module",
                   "table has 10000000 initial elements; this server allows at most"),
    "two-memories": ("hostile/two_memories", {}, 400, "invalid_module", "2 memories"),
    "two-tables": ("hostile/two_tables", {}, 400, "invalid_module", "2 tables"),
    "unknown-import": ("hostile/unknown_import", {}, 400, "invalid_module", "env.launch_missiles"),
    "sock-open-import": ("hostile/sock_open_import", {}, 400, "invalid_module", "sock_open"),
    "no-interface": ("hostile/no_interface", {}, 400, "invalid_module", "interface"),
    "not-wasm": ("hostile/invalid_bytes", {}, 400, "invalid_module", "WebAssembly"),
    "truncated": ("hostile/truncated", {}, 400, "invalid_module", "WebAssembly"),
    "bad-route-signature": ("hostile/bad_route_signature", {}, 400, "invalid_module", "boom"),
}


@pytest.mark.parametrize("case_id", list(DEPLOY_CASES))
def test_refused_at_deploy_with_a_clear_error(server: Server, modules_dir: Path, case_id: str) -> None:
    module, limits, status, code, fragment = DEPLOY_CASES[case_id]
    name = "d-" + case_id
    started = time.monotonic()
    r = server.deploy(name, (modules_dir / f"{module}.wasm").read_bytes(), **limits)
    TIMES["deploy:" + case_id] = time.monotonic() - started
    assert r.status_code == status, r.text
    assert_clean(r)
    body = r.json()["error"]
    assert body["code"] == code and fragment in body["message"], body
    if case_id == "sock-open-import":
        assert "sock_connect" in body["message"]
        assert "fd_write" not in body["message"]  # provided, so not named
    assert server.client.get(f"/fn/{name}").status_code == 404  # nothing was stored
    assert_good(server)


@pytest.mark.parametrize("module", ["hostile/huge_table", "hostile/two_memories", "hostile/two_tables",
                                    "hostile/huge_initial_memory"])
def test_shapes_no_instance_could_have_are_refused_without_the_pool_too(tmp_path: Path, wasm, module: str) -> None:
    """With the pooling allocator off (its fallback), wasmtime compiles these and every
    call then failed at instantiation; the deploy check refuses them either way."""
    from wasmhost.errors import InvalidModule
    from wasmhost.host import Host

    from .conftest import small_settings
    with Host(small_settings(tmp_path / "data", pooling=False)) as host:
        with pytest.raises(InvalidModule) as info:
            host.deploy("shape", wasm(module))
        assert "allows" in info.value.message or "exceeds" in info.value.message
        assert host.list() == []


# ---- WASI: files, directories, environment, sockets ----------------------------------------

def _errnos(text: str) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split("=") for line in text.splitlines() if "=" in line)}


def test_wasi_cannot_reach_host_files_or_directories(server: Server, modules_dir: Path) -> None:
    assert server.deploy("w-files", (modules_dir / "hostile/wasi_files.wasm").read_bytes()).status_code == 201
    started = time.monotonic()
    r = server.client.get("/fn/w-files")
    TIMES["wasi-files"] = time.monotonic() - started
    assert r.status_code == 200, r.text
    assert "LEAK" not in r.text and "root:" not in r.text
    errnos = _errnos(r.text)
    expected = {f"prestat{fd}" for fd in range(3, 10)} | {"open3", "open4", "open0", "open1", "dotdot3",
                                                         "readdir3", "readdir0", "stat3", "read5", "read9"}
    assert set(errnos) == expected, r.text
    assert all(errno != 0 for errno in errnos.values()), errnos
    EBADF = 8
    for what in ("prestat3", "prestat4", "prestat9", "open3", "open4", "dotdot3", "readdir3", "stat3",
                 "read5", "read9"):
        assert errnos[what] == EBADF, (what, errnos)
    assert_good(server)


def test_wasi_sockets_fail_inside_the_guest(server: Server, modules_dir: Path) -> None:
    assert server.deploy("w-sock", (modules_dir / "hostile/wasi_sockets.wasm").read_bytes()).status_code == 201
    started = time.monotonic()
    r = server.client.get("/fn/w-sock")
    TIMES["wasi-sockets"] = time.monotonic() - started
    assert r.status_code == 200, r.text
    errnos = _errnos(r.text)
    assert set(errnos) == {"accept3", "accept4", "accept0", "recv3", "send3", "send1", "shutdown3"}, r.text
    assert all(errno != 0 for errno in errnos.values()), errnos
    for what in ("accept3", "accept4", "recv3", "send3", "shutdown3"):
        assert errnos[what] == 8, (what, errnos)  # EBADF: no socket was ever handed over
    assert_good(server)


def test_wasi_environment_is_only_the_cgi_variables(server: Server, modules_dir: Path) -> None:
    r = server.deploy("w-env", (modules_dir / "wagi_env.wasm").read_bytes(), )
    assert r.status_code == 201, r.text
    r = server.client.get("/fn/w-env/a", params={"q": "1"}, headers={"x-probe": "yes"})
    assert r.status_code == 200
    assert SECRET not in r.text
    names = {line[4:].split("=", 1)[0] for line in r.text.splitlines() if line.startswith("env:")}
    cgi = {"REQUEST_METHOD", "PATH_INFO", "PATH_TRANSLATED", "QUERY_STRING", "CONTENT_TYPE", "CONTENT_LENGTH",
           "SCRIPT_NAME", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "SERVER_SOFTWARE", "GATEWAY_INTERFACE",
           "REMOTE_ADDR", "REMOTE_HOST", "AUTH_TYPE", "REMOTE_USER", "X_FULL_URL", "X_MATCHED_ROUTE",
           "X_RAW_PATH_INFO"}
    headers = {n for n in names if n.startswith("HTTP_")}
    assert names - headers == cgi, sorted(names - headers ^ cgi)
    assert "HTTP_X_PROBE" in headers
    for host_var in ("PATH", "HOME", "HOSTILE_SECRET", "WASMHOST_DATA", "PYTHONUNBUFFERED"):
        assert host_var not in names
    assert_good(server)


def test_a_module_importing_every_wasi_function_deploys_and_runs(server: Server, modules_dir: Path) -> None:
    wasm = (modules_dir / "hostile/all_wasi_imports.wasm").read_bytes()
    assert len(wasmtime.Module(wasmtime.Engine(), wasm).imports) == 46
    r = server.deploy("w-all", wasm)
    assert r.status_code == 201, r.text
    started = time.monotonic()
    r = server.client.get("/fn/w-all")
    TIMES["wasi-all-imports"] = time.monotonic() - started
    assert r.status_code == 200 and r.content == b"all imports linked\n", r.text
    assert_good(server)


# ---- huge modules at upload -------------------------------------------------------------------

HELLO_RESPONSE = bytes.fromhex(
    "83a6737461747573ccc8a7686561646572739192ac636f6e74656e742d74797065b9746578742f706c61696e3b"
    "20636861727365743d7574662d38a4626f6479ae48656c6c6f2c20776f726c64210a")


def _hello_wat(extra: str = "", pages: int = 1, data: str = "") -> str:
    """A hello handler (answers like modules/hello_handler.wat) with `extra` definitions."""
    escaped = "".join(f"\\{b:02x}" for b in HELLO_RESPONSE)
    return f"""(module
  (memory (export "memory") {pages})
  (data (i32.const 16) "{escaped}")
  {data}
  (func (export "wasmhost_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "wasmhost_handle") (param i32 i32) (result i64)
    (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const {len(HELLO_RESPONSE)})))
  {extra})"""


def many_functions(n: int, exported: bool = False) -> bytes:
    """A hello handler with `n` more functions (each `(result i32) i32.const K`), exported or not."""
    funcs = "\n".join(f'(func $f{i}{f" (export {chr(34)}f{i}{chr(34)})" if exported else ""} (result i32) '
                      f"(i32.const {i}))" for i in range(n))
    return wasmtime.wat2wasm(_hello_wat(funcs))


def huge_data(size: int, pages: int) -> bytes:
    """A hello handler with one data segment of `size` bytes at 64 KiB, in a memory of `pages` pages."""
    return wasmtime.wat2wasm(_hello_wat(pages=pages, data=f'(data (i32.const 65536) "{"x" * size}")'))


def _leb(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def custom_section(name: bytes, payload_size: int) -> bytes:
    body = _leb(len(name)) + name + b"\x00" * payload_size
    return b"\x00" + _leb(len(body)) + body


def hello_with_custom(*sections: bytes) -> bytes:
    return wasmtime.wat2wasm(_hello_wat()) + b"".join(sections)


UPLOAD_CASES: dict[str, tuple[Callable[[], bytes], int, str | None, str]] = {
    # case: (module, HTTP status, error code (None: deployed and answers hello), message fragment)
    "data-segment-6MiB": (lambda: huge_data(6 * MIB, 128), 201, None, ""),
    "data-segment-outside-memory": (lambda: huge_data(2 * MIB, 2), 400, "invalid_module",
                                    "outside its initial memory"),
    "custom-section-7MiB": (lambda: hello_with_custom(custom_section(b"big", 7 * MIB)), 201, None, ""),
    "custom-sections-200000": (lambda: hello_with_custom(*[custom_section(b"c", 0)] * 200_000), 201, None, ""),
    "custom-section-over-module-limit": (lambda: hello_with_custom(custom_section(b"big", 9 * MIB)), 413,
                                         "too_large", "exceeds the limit of 8388608 bytes"),
    "functions-2000": (lambda: many_functions(2000), 201, None, ""),
}


@pytest.mark.parametrize("case_id", list(UPLOAD_CASES))
def test_huge_module_upload(server: Server, case_id: str) -> None:
    make, status, code, fragment = UPLOAD_CASES[case_id]
    _upload(server, "u-" + case_id.lower(), make(), status, code, fragment, case_id)


def _upload(server: Server, name: str, wasm: bytes, status: int, code: str | None, fragment: str,
            case_id: str) -> None:
    started = time.monotonic()
    r = server.deploy(name, bytes(wasm))  # wat2wasm gives a bytearray, which httpx would iterate
    TIMES["upload:" + case_id] = time.monotonic() - started
    assert r.status_code == status, r.text[:500]
    assert_clean(r)
    if code is None:
        r = server.client.get(f"/fn/{name}")
        assert r.status_code == 200 and r.content == b"Hello, world!\n"
    else:
        body = r.json()["error"]
        assert body["code"] == code and fragment in body["message"], body
        assert server.client.get(f"/fn/{name}").status_code == 404
    assert_good(server)


@pytest.mark.slow
@pytest.mark.parametrize("case_id,make,status,code,fragment", [
    ("functions-50000", lambda: many_functions(50_000), 201, None, ""),
    ("exported-functions-35000", lambda: many_functions(35_000, exported=True), 400, "invalid_module",
     "more per-instance state than this server allows"),
], ids=["functions-50000", "exported-functions-35000"])
def test_module_with_tens_of_thousands_of_functions(server: Server, case_id, make, status, code, fragment) -> None:
    """Compiling these takes seconds (~0.3 ms per function here); the server keeps
    answering other calls meanwhile (compiles run off the event loop)."""
    wasm = make()
    done = threading.Event()
    answered: list[float] = []

    def call_good_meanwhile() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            while not done.is_set():
                started = time.monotonic()
                assert client.get("/fn/good").status_code == 200
                answered.append(time.monotonic() - started)
                time.sleep(0.05)

    caller = threading.Thread(target=call_good_meanwhile)
    caller.start()
    try:
        _upload(server, "u-" + case_id, wasm, status, code, fragment, case_id)
    finally:
        done.set()
        caller.join()
    assert len(answered) >= 5 and max(answered) < 1.0, answered


# ---- hostile requests ---------------------------------------------------------------------------

def _raw_exchange(server: Server, request: bytes, timeout: float = 30) -> tuple[int, bytes, float]:
    """Send raw bytes on a fresh connection; (status, whole answer, seconds until it was complete)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        while True:
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            length = [line.split(b":", 1)[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")]
            if sep and length and len(body) >= int(length[0]):
                break
    return int(data.split(b" ", 2)[1]), data, time.monotonic() - started


def _head_error(data: bytes, status: int) -> dict[str, Any]:
    """The error of a request refused by the HTTP protocol (http/protocol.py): status,
    `Connection: close`, the project's error shape (no request id: no app saw it)."""
    import json
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status), data[:300]
    assert b"\r\nconnection: close" in head.lower() and b"content-type: application/json" in head.lower()
    error = json.loads(body)["error"]
    assert set(error) >= {"code", "message"} and "request_id" not in error, error
    return error


@pytest.mark.parametrize("target", ["echo", "env"])
def test_a_request_with_10000_headers(server: Server, modules_dir: Path, target: str) -> None:
    """10,000 headers (~130 KB) are refused at once with 431 too_large (the limit is
    MAX_HEADER_COUNT headers, Host included); as many as the limit allows still reach the
    guest, in order; the server is not slowed down for anyone else."""
    from wasmhost.http.protocol import MAX_HEADER_COUNT
    module = {"echo": "echo_handler", "env": "wagi_env"}[target]
    assert server.deploy(f"h-{target}", (modules_dir / f"{module}.wasm").read_bytes()).status_code == 201
    headers = b"".join(b"x-h-%d: v%d\r\n" % (i, i) for i in range(10_000))
    status, data, seconds = _raw_exchange(server, b"GET /fn/h-%s HTTP/1.1\r\nHost: t\r\n%s\r\n" % (
        target.encode(), headers))
    TIMES[f"10000-headers:{target}"] = seconds
    error = _head_error(data, 431)
    assert error == {"code": "too_large", "message": f"the request has more than {MAX_HEADER_COUNT} headers",
                     "limit": MAX_HEADER_COUNT}
    assert seconds < 5
    assert_good(server)
    n = MAX_HEADER_COUNT - 1  # and Host
    headers = b"".join(b"x-h-%d: v%d\r\n" % (i, i) for i in range(n))
    status, data, seconds = _raw_exchange(server, b"GET /fn/h-%s HTTP/1.1\r\nHost: t\r\n%s\r\n" % (
        target.encode(), headers))
    assert status == 200, data[:300]
    body = data.partition(b"\r\n\r\n")[2]
    if target == "echo":
        import msgpack
        seen = msgpack.unpackb(body, raw=False)
        assert [h for h in seen["headers"] if h[0].startswith("x-h-")] == [[f"x-h-{i}", f"v{i}"] for i in range(n)]
    else:
        assert b"env:HTTP_X_H_0=v0\n" in body and b"env:HTTP_X_H_%d=v%d\n" % (n - 1, n - 1) in body
    assert_good(server)


def _drip(server: Server, path: bytes, total: int, pieces: int, gap: float, finish: bool) -> socket.socket:
    """Send a POST with Content-Length `total` and `pieces` pieces of 2 bytes, `gap` s apart."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    sock.sendall(b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % (path, total))
    for _ in range(pieces):
        sock.sendall(b"ab")
        time.sleep(gap)
    if finish:
        sock.sendall(b"ab" * ((total - 2 * pieces) // 2))
    return sock


def test_a_slow_drip_body_does_not_block_other_calls(server: Server, modules_dir: Path) -> None:
    assert server.deploy("drip-echo", (modules_dir / "echo_handler.wasm").read_bytes()).status_code == 201
    result: dict[str, Any] = {}

    def dripper() -> None:
        sock = _drip(server, b"/fn/drip-echo", 100, 10, 0.15, finish=True)
        with sock:
            data = b""
            while b"ab" * 50 not in data:  # the echo answer holds the whole body
                chunk = sock.recv(1 << 16)
                if not chunk:
                    break
                data += chunk
            result["data"] = data

    thread = threading.Thread(target=dripper)
    thread.start()
    answered = []
    while thread.is_alive():
        started = time.monotonic()
        assert_good(server)
        answered.append(time.monotonic() - started)
        time.sleep(0.05)
    thread.join()
    assert result["data"].startswith(b"HTTP/1.1 200") and b"ab" * 50 in result["data"]
    assert len(answered) >= 10 and max(answered) < 1.0, answered  # served all along the 1.5 s drip


def test_a_slow_drip_body_is_cut_off_at_the_body_deadline(server: Server, modules_dir: Path) -> None:
    """A body that never completes gets 408 request_timeout when the body deadline
    (WASMHOST_BODY_TIMEOUT_S, 5 s here) passes; other calls are served meanwhile."""
    BODY_TIMEOUT_S = int(LIMITS["WASMHOST_BODY_TIMEOUT_S"])
    assert server.deploy("drip-echo2", (modules_dir / "echo_handler.wasm").read_bytes()).status_code == 201
    started = time.monotonic()
    sock = _drip(server, b"/fn/drip-echo2", 1000, 5, 0.2, finish=False)
    with sock:
        sock.settimeout(BODY_TIMEOUT_S + 15)
        while time.monotonic() - started < BODY_TIMEOUT_S - 2:
            sock.sendall(b"ab")  # a few bytes now and then: never idle, never complete
            assert_good(server)
            time.sleep(1)
        data = b""
        while b"}}" not in data:
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            data += chunk
    seconds = time.monotonic() - started
    TIMES["slow-drip-cut-off"] = seconds
    assert data.startswith(b"HTTP/1.1 408"), data[:300]
    assert b'"code":"request_timeout"' in data and b"did not arrive within 5 s" in data
    assert BODY_TIMEOUT_S - 1 < seconds < BODY_TIMEOUT_S + 10
    assert_good(server)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.parametrize("count", [100_000, 1_000_000])
def test_a_header_block_over_any_sane_size_is_refused(server: Server, count: int) -> None:
    """100,000 headers (1.4 MB) and 1,000,000 (15 MB: uvicorn's own protocol kept them all,
    200 MB of RSS) get 431 too_large as soon as the count limit is passed; what the client
    still sends is read and dropped, not kept; the server keeps serving."""
    from wasmhost.http.protocol import MAX_HEADER_COUNT
    assert server.proc is not None
    rss = _rss_kib(server.proc.pid)
    headers = b"".join(b"x-h-%d: v\r\n" % i for i in range(count))
    _, data, seconds = _raw_exchange(server, b"GET /fn/good HTTP/1.1\r\nHost: t\r\n%s\r\n" % headers)
    TIMES[f"header-block:{count}"] = seconds
    assert _head_error(data, 431)["limit"] == MAX_HEADER_COUNT
    assert seconds < 5
    assert _rss_kib(server.proc.pid) - rss < 32 * 1024
    assert_good(server)


def _head(size: int, count: int, target: bytes = b"/fn/good") -> bytes:
    """A GET head whose target + header names + values are exactly `size` bytes, in `count`
    headers (Host included): what http/protocol.py counts against MAX_HEADER_BYTES."""
    names = [b"x-h-%04d" % i for i in range(count - 1)]
    filler = size - len(target) - len(b"Host") - len(b"t") - sum(map(len, names))
    assert filler >= 0
    values = [b"v" * (filler // len(names) + (i < filler % len(names))) for i in range(len(names))]
    head = b"GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n" % (target, b"".join(b"%s: %s\r\n" % nv for nv in zip(names, values)))
    assert len(target) + 5 + sum(len(n) + len(v) for n, v in zip(names, values)) == size
    return head


def _send_in_pieces(server: Server, request: bytes, pieces: int) -> tuple[int, bytes]:
    """Like _raw_exchange, in `pieces` writes 5 ms apart (so that the head spans reads)."""
    if pieces == 1:
        return _raw_exchange(server, request)[:2]
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        step = -(-len(request) // pieces)
        for i in range(0, len(request), step):
            sock.sendall(request[i:i + step])
            time.sleep(0.005)
        data = b""
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < int(
                data.lower().partition(b"content-length: ")[2].split(b"\r\n")[0] or 0):
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1]), data


@pytest.mark.parametrize("pieces", [1, 50])
def test_headers_up_to_the_limits_are_served(server: Server, pieces: int) -> None:
    """A few KiB of headers, and exactly MAX_HEADER_BYTES in MAX_HEADER_COUNT headers, are
    served; one byte or one header more gets 431 too_large. The same whether the head comes
    in one read or dripped over many."""
    from wasmhost.http.protocol import MAX_HEADER_BYTES, MAX_HEADER_COUNT
    for size, count, status in [(100 * 100, 100, 200), (MAX_HEADER_BYTES, MAX_HEADER_COUNT, 200),
                                (MAX_HEADER_BYTES + 1, 100, 431), (MAX_HEADER_BYTES + 1, MAX_HEADER_COUNT, 431),
                                (20_000, MAX_HEADER_COUNT + 1, 431)]:
        got, data = _send_in_pieces(server, _head(size, count), pieces)
        assert got == status, (size, count, data[:300])
        if status == 200:
            assert data.endswith(b"Hello, world!\n")
        else:
            limit = MAX_HEADER_COUNT if count > MAX_HEADER_COUNT else MAX_HEADER_BYTES
            assert _head_error(data, 431)["limit"] == limit, (size, count)
    assert_good(server)


def test_a_huge_request_target_is_refused(server: Server) -> None:
    """A request target past MAX_URL_BYTES gets 414 too_large at once (a 1 MB one too);
    one at the limit is served."""
    from wasmhost.http.protocol import MAX_URL_BYTES
    prefix = b"/fn/good?q="
    status, data, _ = _raw_exchange(server, b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % (
        prefix + b"a" * (MAX_URL_BYTES - len(prefix))))
    assert status == 200, data[:300]
    for size in (MAX_URL_BYTES + 1, 1 << 20):
        status, data, seconds = _raw_exchange(server, b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % (
            prefix + b"a" * (size - len(prefix))))
        TIMES[f"huge-url:{size}"] = seconds
        assert _head_error(data, 414) == {
            "code": "too_large", "message": f"the request target exceeds the limit of {MAX_URL_BYTES} bytes",
            "limit": MAX_URL_BYTES}
        assert seconds < 5
    assert_good(server)


def test_a_header_line_without_end_is_refused(server: Server) -> None:
    """One header line that never ends (10 MB so far): httptools keeps a line until its end,
    so this is cut by the raw-bytes backstop (MAX_HEAD_RAW_BYTES) with 431 too_large."""
    from wasmhost.http.protocol import MAX_HEADER_BYTES
    _, data, seconds = _raw_exchange(server, b"GET /fn/good HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 10_000_000)
    TIMES["endless-header-line"] = seconds
    assert _head_error(data, 431)["limit"] == MAX_HEADER_BYTES
    assert seconds < 5
    assert_good(server)


def test_a_slow_drip_header_block_is_cut_at_the_header_limit(server: Server) -> None:
    """Header lines of 1 KiB every 10 ms: the server answers 431 as soon as the head passes
    MAX_HEADER_BYTES (it does not read for ever); other calls are served meanwhile. (A drip
    that stays small is cut by the head deadline: test_a_head_that_drips_too_slowly_gets_408.)"""
    from wasmhost.http.protocol import MAX_HEADER_BYTES
    started = time.monotonic()
    sent = 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"GET /fn/good HTTP/1.1\r\nHost: t\r\n")
        while sent < 4 * MAX_HEADER_BYTES:
            line = b"x-d-%05d: %s\r\n" % (sent, b"v" * 1000)
            sock.sendall(line)
            sent += len(line)
            if _readable(sock, 0.01):
                break
            if sent % (16 * 1024) < len(line):
                assert_good(server)
        data = b""
        while not data.endswith(b"}}"):
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            data += chunk
    TIMES["slow-drip-header-block"] = time.monotonic() - started
    assert _head_error(data, 431)["limit"] == MAX_HEADER_BYTES
    assert MAX_HEADER_BYTES < sent < MAX_HEADER_BYTES + 32 * 1024, sent  # not read for ever
    assert_good(server)


# The protocol alone, under uvicorn in this process, so that its limits can be made small.

@pytest.fixture
def head_server() -> Any:
    """LimitedHttpToolsProtocol under uvicorn (uvloop) in a thread, with an app answering
    "<number of headers> <body bytes>"; yields its port."""
    import uvicorn

    from wasmhost.http.protocol import LimitedHttpToolsProtocol

    from .server import free_port

    async def app(scope: dict, receive: Any, send: Any) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        answer = b"%d %d" % (len(scope["headers"]), len(body))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"%d" % len(answer))]})
        await send({"type": "http.response.body", "body": answer})

    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, http=LimitedHttpToolsProtocol,
                                        loop="uvloop", lifespan="off", log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.01)
    yield port
    srv.should_exit = True
    thread.join(15)
    assert not thread.is_alive()


def _readable(sock: socket.socket, timeout: float) -> bool:
    import select
    return bool(select.select([sock], [], [], timeout)[0])


def _answers(sock: socket.socket, n: int) -> list[tuple[int, bytes, bytes]]:
    """Read n responses (status, head, body) with Content-Length from sock."""
    data, out = b"", []
    while len(out) < n:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if sep:
            length = int(head.lower().partition(b"content-length: ")[2].split(b"\r\n")[0])
            if len(rest) >= length:
                out.append((int(head.split(b" ", 2)[1]), head, rest[:length]))
                data = rest[length:]
                continue
        chunk = sock.recv(1 << 16)
        if not chunk:
            break
        data += chunk
    return out


def test_keep_alive_and_pipelining_are_unaffected(head_server: int) -> None:
    """Hundreds of requests with 0..60 headers on one connection, then 50 pipelined in one write."""
    with socket.create_connection(("127.0.0.1", head_server), timeout=10) as sock:
        for i in range(300):
            extra = b"".join(b"x-%d: %d\r\n" % (j, j) for j in range(i % 61))
            sock.sendall(b"POST /%d HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n%s\r\nab" % (i, extra))
            [(status, _, body)] = _answers(sock, 1)
            assert (status, body) == (200, b"%d 2" % (i % 61 + 2)), i
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nx-a: 1\r\n\r\n" * 50)
        assert [(s, b) for s, _, b in _answers(sock, 50)] == [(200, b"2 0")] * 50


def test_a_refused_head_after_a_pipelined_request(head_server: int) -> None:
    """A good request and an oversized one in one write: the first is answered (with
    Connection: close), then the connection closes; no answer to a request never read."""
    from wasmhost.http.protocol import MAX_HEADER_COUNT
    big = b"".join(b"x-%d: v\r\n" % i for i in range(MAX_HEADER_COUNT + 10))
    with socket.create_connection(("127.0.0.1", head_server), timeout=10) as sock:
        sock.sendall(b"GET /1 HTTP/1.1\r\nHost: t\r\n\r\nGET /2 HTTP/1.1\r\nHost: t\r\n%s\r\n" % big)
        [(status, head, body)] = _answers(sock, 2)
        assert (status, body) == (200, b"1 0") and b"connection: close" in head.lower()
        assert sock.recv(1) == b""


def test_trailers_are_dropped_not_kept(head_server: int) -> None:
    """uvicorn appended chunked-body trailers to the scope's headers without a limit; 20,000
    of them (after the app read the head) are dropped."""
    trailers = b"".join(b"x-t-%d: v\r\n" % i for i in range(20_000))
    with socket.create_connection(("127.0.0.1", head_server), timeout=10) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n%s\r\n" % trailers)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert [(s, b) for s, _, b in _answers(sock, 2)] == [(200, b"2 3"), (200, b"1 0")]


def test_a_head_that_drips_too_slowly_gets_408(head_server: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """HEADER_TIMEOUT_S (made 1 s here) bounds the head: a drip that never passes a size limit
    gets 408 request_timeout, counted from the request's first byte on a kept-alive
    connection; a connection that never sends a byte is closed without an answer."""
    from wasmhost.http import protocol
    monkeypatch.setattr(protocol, "HEADER_TIMEOUT_S", 1.0)
    with socket.create_connection(("127.0.0.1", head_server), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert [(s, b) for s, _, b in _answers(sock, 1)] == [(200, b"1 0")]
        time.sleep(1.2)  # idle between requests: uvicorn's keep-alive timeout (5 s) applies, not ours
        started = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
        data = b""
        for i in range(30):
            try:
                sock.sendall(b"x-%d: v\r\n" % i)
            except OSError:
                break
            data += sock.recv(1 << 16) if _readable(sock, 0.2) else b""
            if data.endswith(b"}}"):
                break
        seconds = time.monotonic() - started
    assert _head_error(data, 408) == {"code": "request_timeout", "timeout_s": 1.0,
                                      "message": "the request headers did not arrive within 1 s"}
    assert 0.9 < seconds < 2.5, seconds
    with socket.create_connection(("127.0.0.1", head_server), timeout=10) as sock:
        started = time.monotonic()
        assert sock.recv(1) == b""
        assert 0.9 < time.monotonic() - started < 2.5


def test_element_segment_outside_the_table_is_refused_at_deploy(server: Server) -> None:
    """Like a data segment outside the memory: every instantiation would trap."""
    wasm = wasmtime.wat2wasm(_hello_wat("(table 2 funcref) (func $f) (elem (i32.const 1) $f $f $f)"))
    _upload(server, "u-elem-outside-table", wasm, 400, "invalid_module",
            "element segment 0 ends at slot 4, outside its initial table of 2 slots", "elem-segment-outside-table")
    fits = wasmtime.wat2wasm(_hello_wat("(table 4 funcref) (func $f) (elem (i32.const 1) $f $f $f)"))
    _upload(server, "u-elem-inside-table", fits, 201, None, "", "elem-segment-inside-table")
    # The other encodings too (tests/test_module_shape.py has all eight): here, after a passive
    # segment, an explicit table index with expressions.
    wasm = wasmtime.wat2wasm(_hello_wat("(table 2 funcref) (func $f) (elem func $f) "
                                        "(elem (table 0) (i32.const 1) funcref (ref.func $f) (ref.null func))"))
    _upload(server, "u-elem-expr-outside-table", wasm, 400, "invalid_module",
            "element segment 1 ends at slot 3, outside its initial table of 2 slots", "elem-expr-segment-outside-table")
