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


@pytest.mark.parametrize("target", ["echo", "env"])
def test_a_request_with_10000_headers(server: Server, modules_dir: Path, target: str) -> None:
    """10,000 headers (~170 KB) are accepted and reach the guest, in order; the server
    is not slowed down for anyone else."""
    module = {"echo": "echo_handler", "env": "wagi_env"}[target]
    assert server.deploy(f"h-{target}", (modules_dir / f"{module}.wasm").read_bytes()).status_code == 201
    headers = b"".join(b"x-h-%d: v%d\r\n" % (i, i) for i in range(10_000))
    status, data, seconds = _raw_exchange(server, b"GET /fn/h-%s HTTP/1.1\r\nHost: t\r\n%s\r\n" % (
        target.encode(), headers))
    TIMES[f"10000-headers:{target}"] = seconds
    assert status == 200, data[:300]
    assert seconds < 5
    body = data.partition(b"\r\n\r\n")[2]
    if target == "echo":
        import msgpack
        seen = msgpack.unpackb(body, raw=False)
        assert [h for h in seen["headers"] if h[0].startswith("x-h-")] == [[f"x-h-{i}", f"v{i}"] for i in range(10_000)]
    else:
        assert b"env:HTTP_X_H_0=v0\n" in body and b"env:HTTP_X_H_9999=v9999\n" in body
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


@pytest.mark.xfail(strict=True, reason="no cap on request header count or size: uvicorn's httptools protocol "
                   "buffers them all (1,000,000 headers = 15 MB took the server to 200 MB RSS); the fix is a "
                   "header-bytes cap in the HTTP protocol (e.g. a uvicorn HttpToolsProtocol subclass answering "
                   "431 past 64 KiB of headers), in serve.py / wasmhost/http, which another session is editing")
def test_a_header_block_over_any_sane_size_is_refused(server: Server) -> None:
    headers = b"".join(b"x-h-%d: v\r\n" % i for i in range(100_000))  # 1.4 MB of headers
    status, data, _ = _raw_exchange(server, b"GET /fn/good HTTP/1.1\r\nHost: t\r\n%s\r\n" % headers)
    assert status in (400, 431), data[:300]
    assert_good(server)


def test_element_segment_outside_the_table_is_refused_at_deploy(server: Server) -> None:
    """Like a data segment outside the memory: every instantiation would trap."""
    wasm = wasmtime.wat2wasm(_hello_wat("(table 2 funcref) (func $f) (elem (i32.const 1) $f $f $f)"))
    _upload(server, "u-elem-outside-table", wasm, 400, "invalid_module",
            "element segment 0 ends at slot 4, outside its initial table of 2 slots", "elem-segment-outside-table")
    fits = wasmtime.wat2wasm(_hello_wat("(table 4 funcref) (func $f) (elem (i32.const 1) $f $f $f)"))
    _upload(server, "u-elem-inside-table", fits, 201, None, "", "elem-segment-inside-table")
