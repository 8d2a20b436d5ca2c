"""Every example answers correctly and every hostile module gets its documented
code — and the same Host keeps serving good calls afterwards."""

from __future__ import annotations

import msgpack
import pytest

from wasmhost.errors import (BadResponse, FuelExhausted, MemoryLimit, NonZeroExit, Timeout, TooLarge, Trap)
from wasmhost.host import Host
from wasmhost.models import Request

HELLO = Request(method="GET", path="/", script_name="/fn/hello")


@pytest.fixture(params=["c", "ctypes"])
def host(request, tmp_path):
    """Every test here runs on both invocation paths: the C fast path and ctypes."""
    from .conftest import small_settings
    with Host(small_settings(tmp_path / "data", fastpath=request.param == "c")) as h:
        if request.param == "c" and h.sandbox.path != "c":
            pytest.fail("the C fast path is not built: run `make install` (it needs gcc and Python headers)")
        assert h.sandbox.path == request.param
        yield h


def deploy(host: Host, wasm, module: str, name: str | None = None, **kwargs):
    name = name or module.split("/")[-1].replace("_", "-")
    host.deploy(name, wasm(module), **kwargs)
    return name


def assert_hello_still_works(host: Host, wasm) -> None:
    if "hello" not in {f.name for f in host.list()}:
        deploy(host, wasm, "hello_handler", "hello")
    inv = host.invoke("hello", HELLO)
    assert inv.ok, inv.error
    assert inv.response.body == b"Hello, world!\n"


def test_hello_handler(host: Host, wasm) -> None:
    deploy(host, wasm, "hello_handler", "hello")
    inv = host.invoke("hello", HELLO)
    assert inv.ok
    assert inv.response.status == 200
    assert inv.response.headers == (("content-type", "text/plain; charset=utf-8"),)
    assert inv.response.body == b"Hello, world!\n"
    assert inv.logs == ["hello called"]
    assert inv.tier == "memory"  # deploy precompiled and warmed the cache
    assert 0 < inv.fuel_used < 1000
    assert inv.timings.instantiate > 0 and inv.timings.run > 0
    assert inv.timings.total >= inv.timings.instantiate + inv.timings.run


def test_hello_without_imports_pays_no_wasi(host: Host, wasm) -> None:
    deploy(host, wasm, "hello_nolog")
    fv = host.registry.resolve("hello-nolog")
    assert fv.imports == ()
    prepared, _, _ = host.cache.get(fv.digest)
    assert prepared.uses_wasi is False
    assert host.invoke("hello-nolog", HELLO).response.body == b"Hello, world!\n"


def test_echo_sees_the_whole_request(host: Host, wasm) -> None:
    deploy(host, wasm, "echo_handler", "echo", config={"GREETING": "hi", "MODE": "test"})
    request = Request(method="POST", path="/a/b", query="x=1&y=%20",
                      headers=(("content-type", "text/plain"), ("x-rep", "1"), ("x-rep", "2")),
                      body=b"\x00\xffpayload")
    inv = host.invoke("echo", request)
    assert inv.ok, inv.error
    seen = msgpack.unpackb(inv.response.body, raw=False)
    assert seen == {
        "method": "POST", "path": "/a/b", "query": "x=1&y=%20",
        "headers": [["content-type", "text/plain"], ["x-rep", "1"], ["x-rep", "2"]],
        "body": b"\x00\xffpayload", "config": {"GREETING": "hi", "MODE": "test"},
    }


def xorshift_expected() -> int:
    """Python twin of modules/cpu_loop.wat: 5,000,000 xorshift32 steps from its seed."""
    from .test_modules_build import xorshift32_jump
    return xorshift32_jump(2463534242, 5_000_000)


def test_cpu_loop_computes_and_charges_fuel(host: Host, wasm) -> None:
    deploy(host, wasm, "cpu_loop", "cpu", limits={"fuel": 1_000_000_000})
    inv = host.invoke("cpu", HELLO)
    assert inv.ok, inv.error
    assert int(inv.response.body) == xorshift_expected()
    assert inv.fuel_used > 5_000_000  # at least one unit per iteration


def test_wasi_handler_captures_stdio_as_logs(host: Host, wasm) -> None:
    deploy(host, wasm, "wasi_handler")
    inv = host.invoke("wasi-handler", HELLO)
    assert inv.ok, inv.error
    assert inv.response.body == b"Hello from WASI handler\n"
    assert inv.logs == ["stdout line", "stderr line"]


def test_hello_wagi(host: Host, wasm) -> None:
    deploy(host, wasm, "hello_wagi")
    fv = host.registry.resolve("hello-wagi")
    assert fv.abi == "wagi"
    inv = host.invoke("hello-wagi", HELLO)
    assert inv.ok, inv.error
    assert inv.response.status == 200
    assert inv.response.body == b"Hello from WAGI\n"
    assert ("content-type", "text/plain") in [(k.lower(), v) for k, v in inv.response.headers]


def test_wagi_environment_argv_and_stdin(host: Host, wasm) -> None:
    deploy(host, wasm, "wagi_env", "env", config={"API_KEY": "k1", "REQUEST_METHOD": "overridden?"})
    request = Request(method="PUT", path="/x/y", query="a=1&b=two", body=b"input body",
                      headers=(("content-type", "text/csv"), ("x-custom", "v"), ("authorization", "secret")),
                      script_name="/fn/env", server_name="example.test", server_port=8080, remote_addr="10.0.0.9")
    inv = host.invoke("env", request)
    assert inv.ok, inv.error
    lines = inv.response.body.decode().splitlines()
    env = dict(line[4:].split("=", 1) for line in lines if line.startswith("env:"))
    args = [line[4:] for line in lines if line.startswith("arg:")]
    assert args == ["/fn/env", "a=1", "b=two"]
    assert env["REQUEST_METHOD"] == "PUT"  # CGI variables win over config
    assert env["API_KEY"] == "k1"
    assert env["PATH_INFO"] == "/x/y"
    assert env["QUERY_STRING"] == "a=1&b=two"
    assert env["CONTENT_TYPE"] == "text/csv"
    assert env["CONTENT_LENGTH"] == str(len(b"input body"))
    assert env["SCRIPT_NAME"] == "/fn/env"
    assert env["SERVER_NAME"] == "example.test" and env["SERVER_PORT"] == "8080"
    assert env["REMOTE_ADDR"] == "10.0.0.9"
    assert env["GATEWAY_INTERFACE"] == "CGI/1.1"
    assert env["HTTP_X_CUSTOM"] == "v"
    assert "HTTP_AUTHORIZATION" not in env
    assert "PATH" not in env and "HOME" not in env  # nothing of the host's environment
    assert lines[-1] == "stdin:input body"


def test_wagi_status_crlf_and_repeated_headers(host: Host, wasm) -> None:
    deploy(host, wasm, "wagi_status")
    inv = host.invoke("wagi-status", HELLO)
    assert inv.ok, inv.error
    assert inv.response.status == 404
    cookies = [v for k, v in inv.response.headers if k.lower() == "set-cookie"]
    assert cookies == ["a=1", "b=2"]
    assert inv.response.body == b"not here\n"


def test_wagi_routes(host: Host, wasm) -> None:
    deploy(host, wasm, "wagi_routes", "routes")
    fv = host.registry.resolve("routes")
    assert {(r.path, r.export, r.prefix) for r in fv.routes} == {("/hello", "hello", False), ("/files", "files", True)}
    body = lambda path: host.invoke("routes", Request(path=path, script_name="/fn/routes")).response.body  # noqa: E731
    assert body("/") == b"root\n"
    assert body("/hello") == b"hello route\n"
    assert body("/files") == b"files route\n"
    assert body("/files/a/b.txt") == b"files route\n"
    assert body("/filesystem") == b"root\n"


def test_wagi_entrypoint_from_config(host: Host, wasm) -> None:
    host.deploy("entry", wasm("wagi_routes"), entrypoint="hello")
    inv = host.invoke("entry", Request(path="/"))
    assert inv.response.body == b"hello route\n"


# ---- hostile modules -------------------------------------------------------------------

HOSTILE_AT_INVOKE = [
    ("hostile/infinite_loop", {"fuel": 5_000_000}, FuelExhausted, None),
    ("hostile/infinite_loop", {"fuel": 2_000_000_000, "timeout_ms": 50}, Timeout, None),
    ("hostile/memory_bomb", {"memory_mb": 8}, MemoryLimit, None),
    ("hostile/deep_recursion", {}, Trap, "stack_overflow"),
    ("hostile/unreachable", {}, Trap, "unreachable"),
    ("hostile/oob_read", {}, Trap, "memory_out_of_bounds"),
    ("hostile/div_zero", {}, Trap, "integer_division_by_zero"),
    ("hostile/initial_memory_over_cap", {"memory_mb": 16}, MemoryLimit, None),
    ("hostile/oversized_output", {"memory_mb": 32}, TooLarge, None),
    ("hostile/malformed_response", {}, BadResponse, None),
    ("hostile/wrong_type_response", {}, BadResponse, None),
    ("hostile/bad_status_response", {}, BadResponse, None),
    ("hostile/bad_pointer", {}, BadResponse, None),
    ("hostile/nonzero_exit", {}, NonZeroExit, None),
    ("hostile/stdout_flood", {}, TooLarge, None),
]


@pytest.mark.parametrize("module,limits,error,trap_code", HOSTILE_AT_INVOKE,
                         ids=[f"{m.split('/')[1]}-{e.code}" for m, _, e, _ in HOSTILE_AT_INVOKE])
def test_hostile_module_is_classified_and_host_survives(host: Host, wasm, module, limits, error, trap_code) -> None:
    name = deploy(host, wasm, module, limits=limits)
    inv = host.invoke(name, HELLO)
    assert isinstance(inv.error, error), (inv.error, getattr(inv.error, "message", None))
    assert inv.error.code == error.code
    assert inv.response is None
    if trap_code:
        assert inv.error.details.get("trap_code") == trap_code
    message = inv.error.message
    assert "/work" not in message and "/tmp" not in message and "Traceback" not in message
    # The same host serves good calls afterwards, and the hostile one again classifies the same.
    assert_hello_still_works(host, wasm)
    again = host.invoke(name, HELLO)
    assert type(again.error) is type(inv.error)


def test_fuel_exhausted_reports_fuel(host: Host, wasm) -> None:
    name = deploy(host, wasm, "hostile/infinite_loop", limits={"fuel": 1_000_000})
    inv = host.invoke(name, HELLO)
    assert isinstance(inv.error, FuelExhausted)
    assert inv.fuel_used == 1_000_000


def test_nonzero_exit_carries_the_code(host: Host, wasm) -> None:
    name = deploy(host, wasm, "hostile/nonzero_exit")
    inv = host.invoke(name, HELLO)
    assert isinstance(inv.error, NonZeroExit)
    assert inv.error.details["exit_code"] == 3


@pytest.mark.parametrize("status", [1, 3, 125, 126, 127, 255, 256, -1, 2**31 - 1, -2**31])
def test_every_exit_status_is_nonzero_exit_with_that_status(host: Host, wasm, status: int) -> None:
    """wasmtime's own proc_exit turns a status of 126 or more into a plain error ("invalid exit
    status"), which was classified `trap`; the host's proc_exit keeps the status as passed."""
    import struct
    name = deploy(host, wasm, "hostile/exit_status")
    inv = host.invoke(name, Request(method="POST", path="/", script_name="/fn/x", body=struct.pack("<i", status)))
    assert isinstance(inv.error, NonZeroExit), (inv.error, getattr(inv.error, "message", None))
    assert inv.error.details["exit_code"] == status
    assert inv.error.message == f"the program exited with status {status}"
    ok = host.invoke(name, Request(method="POST", path="/", script_name="/fn/x", body=struct.pack("<i", 0)))
    assert ok.ok and ok.response.status == 200 and ok.response.body == b"", ok.error


def test_memory_limit_message_says_cap_was_reached(host: Host, wasm) -> None:
    name = deploy(host, wasm, "hostile/memory_bomb", limits={"memory_mb": 4})
    inv = host.invoke(name, HELLO)
    assert isinstance(inv.error, MemoryLimit)
    assert "4 MiB" in inv.error.message


def test_log_flood_is_truncated_at_the_cap(host: Host, wasm) -> None:
    name = deploy(host, wasm, "hostile/log_flood", limits={"fuel": 1_000_000_000})
    inv = host.invoke(name, HELLO)
    assert inv.ok, inv.error
    assert inv.logs_truncated
    assert len("\n".join(inv.logs).encode()) <= host.settings.max_log_bytes
    assert len("\n".join(inv.logs).encode()) >= host.settings.max_log_bytes - 1024


def test_timeout_is_near_the_deadline(host: Host, wasm) -> None:
    name = deploy(host, wasm, "hostile/infinite_loop", limits={"fuel": 2_000_000_000, "timeout_ms": 100})
    inv = host.invoke(name, HELLO)
    assert isinstance(inv.error, Timeout)
    # Not a speed assertion: the deadline must have been waited for, not skipped.
    assert inv.timings.run >= 0.09


def test_many_hostile_calls_leave_no_state_behind(host: Host, wasm) -> None:
    from wasmhost.hostcalls import STATES
    bomb = deploy(host, wasm, "hostile/memory_bomb", limits={"memory_mb": 4})
    trap = deploy(host, wasm, "hostile/unreachable")
    for _ in range(30):
        assert isinstance(host.invoke(bomb, HELLO).error, MemoryLimit)
        assert isinstance(host.invoke(trap, HELLO).error, Trap)
    assert not STATES
    assert_hello_still_works(host, wasm)
