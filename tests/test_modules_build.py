"""The example and hostile modules build, and behave as modules/README.md says.

Everything here uses the plain wasmtime API (no wasmhost code), so these tests
check the modules themselves; the host's own tests check how it classifies them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import msgpack
import pytest
import wasmtime
from wasmtime import (
    Config, Engine, ExitTrap, FuncType, Linker, Module, Store, Trap, TrapCode,
    ValType, WasiConfig, WasmtimeError,
)

from modules.build import INVALID_BYTES, MODULES_DIR, build_all, wat_sources

REPO = MODULES_DIR.parent
I32 = ValType.i32()

HELLO_RESPONSE = {
    "status": 200,
    "headers": [["content-type", "text/plain; charset=utf-8"]],
    "body": "Hello, world!\n",
}
# The exact bytes documented in modules/hello_handler.wat and modules/README.md.
HELLO_HEX = (
    "83a6737461747573ccc8a7686561646572739192ac636f6e74656e742d74797065"
    "b9746578742f706c61696e3b20636861727365743d7574662d38a4626f6479"
    "ae48656c6c6f2c20776f726c64210a"
)


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def built(tmp_path_factory) -> dict[str, Path]:
    return build_all(tmp_path_factory.mktemp("modules-build"))


@pytest.fixture(scope="session")
def engine() -> Engine:
    return Engine()


@pytest.fixture(scope="session")
def fuel_engine() -> Engine:
    config = Config()
    config.consume_fuel = True
    return Engine(config)


class Guest:
    """One fresh instance of a module, as the host would make per call."""

    def __init__(self, engine: Engine, wasm_path: Path, tmp_path: Path, *,
                 wasi: WasiConfig | None = None, fuel: int | None = None,
                 memory_limit: int | None = None):
        self.logs: list[str] = []
        self.store = Store(engine)
        if fuel is not None:
            self.store.set_fuel(fuel)
        if memory_limit is not None:
            self.store.set_limits(memory_size=memory_limit)
        self.module = Module.from_file(engine, str(wasm_path))
        linker = Linker(engine)
        imports = {(i.module, i.name) for i in self.module.imports}
        if ("wasmhost", "log") in imports:
            linker.define_func("wasmhost", "log", FuncType([I32, I32], []),
                               self._log, access_caller=True)
        if any(module == "wasi_snapshot_preview1" for module, _ in imports):
            if wasi is None:
                wasi = WasiConfig()
            self.stdout = tmp_path / "stdout"
            self.stderr = tmp_path / "stderr"
            wasi.stdout_file = str(self.stdout)
            wasi.stderr_file = str(self.stderr)
            linker.define_wasi()
            self.store.set_wasi(wasi)
        self.instance = linker.instantiate(self.store, self.module)
        self.exports = self.instance.exports(self.store)

    def _log(self, caller, ptr: int, length: int) -> None:
        # Host functions must not raise (see FACTS.md): decode leniently.
        data = caller["memory"].read(caller, ptr, ptr + length)
        self.logs.append(bytes(data).decode("utf-8", "replace"))

    @property
    def memory(self) -> wasmtime.Memory:
        return self.exports["memory"]

    def handle_raw(self, request: bytes) -> tuple[int, int]:
        """The handler ABI up to the returned (ptr, len)."""
        ptr = self.exports["wasmhost_alloc"](self.store, len(request))
        if request:
            self.memory.write(self.store, request, ptr)
        packed = self.exports["wasmhost_handle"](self.store, ptr, len(request)) & (2**64 - 1)
        return packed >> 32, packed & 0xFFFFFFFF

    def handle_bytes(self, request: bytes = b"") -> bytes:
        out_ptr, out_len = self.handle_raw(request)
        assert out_ptr + out_len <= self.memory.data_len(self.store)
        return bytes(self.memory.read(self.store, out_ptr, out_ptr + out_len))

    def handle(self, request: dict | None = None):
        raw = msgpack.packb(request if request is not None else make_request())
        return msgpack.unpackb(self.handle_bytes(raw))

    def run(self, export: str = "_start") -> str:
        self.exports[export](self.store)
        return self.stdout.read_bytes().decode()  # not read_text: keep \r\n as written


def make_request(**overrides) -> dict:
    request = {
        "method": "GET",
        "path": "/",
        "query": "",
        "headers": [],
        "body": b"",
        "config": {},
    }
    request.update(overrides)
    return request


# ---------------------------------------------------------------- the build

@pytest.mark.parametrize("name", sorted(wat_sources()))
def test_every_wat_compiles_and_validates(built, engine, name):
    path = built[name]
    out_dir = built["hello_handler"].parent
    assert path == out_dir / f"{name}.wasm"  # OUT/<same relative path>.wasm
    Module(engine, path.read_bytes())  # compiles: valid wasm


def test_build_all_names_every_module(built):
    expected = set(wat_sources()) | {"hostile/invalid_bytes", "hostile/truncated"}
    assert set(built) == expected
    assert "hello_handler" in built and "hostile/unreachable" in built
    assert all(path.is_file() for path in built.values())


def test_build_is_incremental(built):
    before = {name: path.stat().st_mtime_ns for name, path in built.items()}
    assert build_all(built["hello_handler"].parent) == built
    assert {name: path.stat().st_mtime_ns for name, path in built.items()} == before

    # An output older than its source is rebuilt; others are left alone.
    stale = built["echo_handler"]
    os.utime(stale, ns=(0, 0))
    build_all(built["hello_handler"].parent)
    assert stale.stat().st_mtime_ns > 0
    assert built["cpu_loop"].stat().st_mtime_ns == before["cpu_loop"]


def test_cli_builds_into_out_dir(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(MODULES_DIR / "build.py"), "--out", str(out)],
        capture_output=True, text=True, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert (out / "hello_handler.wasm").is_file()
    assert (out / "hostile" / "unreachable.wasm").is_file()
    assert (out / "hostile" / "invalid_bytes.wasm").is_file()
    assert (out / "hostile" / "truncated.wasm").is_file()


@pytest.mark.parametrize("text", [
    "(module (func (i32.bogus)))",    # does not parse
    "(module (func (result i32)))",   # parses, but does not validate (no result value)
])
def test_build_reports_the_broken_file(tmp_path, monkeypatch, text):
    bad = tmp_path / "src" / "broken.wat"
    bad.parent.mkdir()
    bad.write_text(text)
    monkeypatch.setattr("modules.build.wat_sources", lambda: {"broken": bad})
    with pytest.raises(WasmtimeError, match="broken.wat"):
        build_all(tmp_path / "out")
    assert not (tmp_path / "out" / "broken.wasm").exists()


# ---------------------------------------------------------------- handler examples

def test_hello_handler_response_and_log(built, engine, tmp_path):
    guest = Guest(engine, built["hello_handler"], tmp_path)
    raw = guest.handle_bytes(msgpack.packb(make_request()))
    assert raw.hex() == HELLO_HEX
    assert msgpack.unpackb(raw) == HELLO_RESPONSE
    assert guest.logs == ["hello called"]


def test_hello_nolog_has_no_imports(built, engine, tmp_path):
    guest = Guest(engine, built["hello_nolog"], tmp_path)
    assert guest.module.imports == []
    assert guest.handle() == HELLO_RESPONSE
    assert guest.handle_bytes(b"").hex() == HELLO_HEX  # an empty request is fine too


@pytest.mark.parametrize("body", [b"", b"ping", bytes(range(256)) * 1000])
def test_echo_returns_the_request_bytes(built, engine, tmp_path, body):
    request = make_request(
        method="POST",
        path="/a/b",
        query="x=1&y=%20",
        headers=[["content-type", "application/octet-stream"], ["x-a", "1"], ["x-a", "2"]],
        body=body,
        config={"GREETING": "héllo", "EMPTY": ""},
    )
    raw_request = msgpack.packb(request)
    guest = Guest(engine, built["echo_handler"], tmp_path)
    response = guest.handle(request)
    assert response["status"] == 200
    assert response["headers"] == [["content-type", "application/msgpack"]]
    assert isinstance(response["body"], bytes)
    assert response["body"] == raw_request
    assert msgpack.unpackb(response["body"]) == request
    # The body uses bin32 (0xc6) whatever its size, after a fixed 58-byte prefix.
    out = guest.handle_bytes(raw_request)
    assert out[58] == 0xC6 and int.from_bytes(out[59:63], "big") == len(raw_request)


def xorshift32(x: int, n: int) -> int:
    """The loop of cpu_loop.wat, as documented there (plain Python)."""
    for _ in range(n):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
    return x


def xorshift32_jump(x: int, n: int) -> int:
    """xorshift32 applied n times, in O(log n).

    One step is linear over GF(2) (only xors and shifts), so it is a 32x32
    bit matrix; raise it to the n-th power by squaring. The plain loop takes
    seconds in Python for n = 5,000,000; this takes a millisecond.
    """
    def apply(columns: list[int], v: int) -> int:
        out = 0
        for bit in range(32):
            if v >> bit & 1:
                out ^= columns[bit]
        return out

    step = [xorshift32(1 << bit, 1) for bit in range(32)]  # column i = image of bit i
    result = list(1 << bit for bit in range(32))            # identity
    while n:
        if n & 1:
            result = [apply(step, c) for c in result]
        step = [apply(step, c) for c in step]
        n >>= 1
    return apply(result, x)


def test_xorshift_jump_matches_the_plain_loop():
    for n in (0, 1, 2, 3, 1000, 4097):
        assert xorshift32_jump(2463534242, n) == xorshift32(2463534242, n)


def test_cpu_loop_result(built, fuel_engine, tmp_path):
    expected = xorshift32_jump(2463534242, 5_000_000)
    assert expected == 4135555716  # the value written in cpu_loop.wat's comment
    guest = Guest(fuel_engine, built["cpu_loop"], tmp_path, fuel=10**10)
    assert guest.handle() == {"status": 200, "body": str(expected)}
    spent = 10**10 - guest.store.get_fuel()
    assert 5_000_000 < spent < 200_000_000  # order of magnitude quoted in the README


def test_wasi_handler_uses_stdio(built, engine, tmp_path):
    guest = Guest(engine, built["wasi_handler"], tmp_path)
    imports = {(i.module, i.name) for i in guest.module.imports}
    assert imports == {("wasi_snapshot_preview1", "fd_write")}
    assert guest.handle() == {
        "status": 200,
        "headers": [["content-type", "text/plain; charset=utf-8"]],
        "body": "Hello from WASI handler\n",
    }
    assert guest.stdout.read_bytes() == b"stdout line\n"
    assert guest.stderr.read_bytes() == b"stderr line\n"


# ---------------------------------------------------------------- wagi examples

def test_hello_wagi(built, engine, tmp_path):
    guest = Guest(engine, built["hello_wagi"], tmp_path)
    assert guest.run() == "Content-Type: text/plain\n\nHello from WAGI\n"


def test_wagi_status(built, engine, tmp_path):
    guest = Guest(engine, built["wagi_status"], tmp_path)
    assert guest.run() == (
        "Status: 404 Not Found\r\nContent-Type: text/plain\r\n"
        "Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nnot here\n"
    )


@pytest.mark.parametrize("export, output", [
    ("_start", "Content-Type: text/plain\n\nroot\n"),
    ("_routes", "/hello hello\n/files/... files\n"),
    ("hello", "Content-Type: text/plain\n\nhello route\n"),
    ("files", "Content-Type: text/plain\n\nfiles route\n"),
])
def test_wagi_routes(built, engine, tmp_path, export, output):
    guest = Guest(engine, built["wagi_routes"], tmp_path)
    assert guest.run(export) == output


def test_wagi_env_dumps_args_env_and_stdin(built, engine, tmp_path):
    argv = ["/env", "a=1", "b=two words", "ünï"]
    env = [
        ("GREETING", "hi"),
        ("REQUEST_METHOD", "POST"),
        ("PATH_INFO", "/x/y"),
        ("QUERY_STRING", "a=1&b=two%20words"),
        ("HTTP_X_CUSTOM", "v=1"),
        ("EMPTY", ""),
    ]
    # More than the module's 64 KiB read buffer, so it reads several chunks.
    stdin = (b"line one\nline two\n" + bytes(range(256))) * 400
    stdin_path = tmp_path / "stdin"
    stdin_path.write_bytes(stdin)
    wasi = WasiConfig()
    wasi.argv = argv
    wasi.env = env
    wasi.stdin_file = str(stdin_path)
    guest = Guest(engine, built["wagi_env"], tmp_path, wasi=wasi)
    guest.exports["_start"](guest.store)

    expected = b"Content-Type: text/plain\n\n"
    expected += b"".join(f"arg:{a}\n".encode() for a in argv)
    expected += b"".join(f"env:{k}={v}\n".encode() for k, v in env)
    expected += b"stdin:" + stdin
    assert guest.stdout.read_bytes() == expected


def test_wagi_env_with_nothing(built, engine, tmp_path):
    guest = Guest(engine, built["wagi_env"], tmp_path)  # no args, env or stdin
    assert guest.run() == "Content-Type: text/plain\n\nstdin:"


# ---------------------------------------------------------------- hostile set

def test_invalid_bytes_do_not_compile(built, engine):
    data = built["hostile/invalid_bytes"].read_bytes()
    assert data == INVALID_BYTES
    assert not data.startswith(b"\0asm")
    with pytest.raises(WasmtimeError):
        Module(engine, data)


def test_truncated_does_not_compile(built, engine):
    data = built["hostile/truncated"].read_bytes()
    whole = built["hello_handler"].read_bytes()
    assert data.startswith(b"\0asm") and whole.startswith(data)
    assert len(data) <= len(whole) // 2
    with pytest.raises(WasmtimeError):
        Module(engine, data)


def test_unknown_import_is_listed(built, engine):
    module = Module.from_file(engine, str(built["hostile/unknown_import"]))
    imports = [(i.module, i.name) for i in module.imports]
    assert ("env", "launch_missiles") in imports


def test_no_interface_exports_only_foo(built, engine):
    module = Module.from_file(engine, str(built["hostile/no_interface"]))
    assert module.imports == []
    assert [e.name for e in module.exports] == ["foo"]


def test_infinite_loop_runs_out_of_fuel(built, fuel_engine, tmp_path):
    guest = Guest(fuel_engine, built["hostile/infinite_loop"], tmp_path, fuel=1_000_000)
    with pytest.raises(Trap) as info:
        guest.handle()
    assert info.value.trap_code == TrapCode.OUT_OF_FUEL


@pytest.mark.parametrize("name, code", [
    ("hostile/unreachable", TrapCode.UNREACHABLE),
    ("hostile/deep_recursion", TrapCode.STACK_OVERFLOW),
    ("hostile/oob_read", TrapCode.MEMORY_OUT_OF_BOUNDS),
    ("hostile/div_zero", TrapCode.INTEGER_DIVISION_BY_ZERO),
])
def test_traps(built, fuel_engine, tmp_path, name, code):
    guest = Guest(fuel_engine, built[name], tmp_path, fuel=10**9)
    with pytest.raises(Trap) as info:
        guest.handle()
    assert info.value.trap_code == code


def test_memory_bomb_stops_at_the_cap(built, engine, tmp_path):
    cap = 16 * 2**20
    guest = Guest(engine, built["hostile/memory_bomb"], tmp_path, memory_limit=cap)
    with pytest.raises(Trap) as info:
        guest.handle()
    assert info.value.trap_code == TrapCode.UNREACHABLE
    assert guest.memory.data_len(guest.store) == cap


def test_huge_initial_memory_is_refused_under_a_cap(built, engine, tmp_path):
    with pytest.raises(WasmtimeError, match="exceeds memory limits"):
        Guest(engine, built["hostile/huge_initial_memory"], tmp_path, memory_limit=256 * 2**20)


@pytest.mark.parametrize("name, ptr, length, content", [
    ("hostile/oversized_output", 0, 20_000_000, None),
    ("hostile/malformed_response", 1024, 3, b"\xc1\xc1\xc1"),
    ("hostile/wrong_type_response", 1024, 4, msgpack.packb([1, 2, 3])),
    ("hostile/bad_status_response", 1024, 12, msgpack.packb({"status": "abc"})),
    ("hostile/bad_pointer", 0x7FFFFFF0, 100, None),
])
def test_bad_responses_return_what_is_documented(built, engine, tmp_path, name, ptr, length, content):
    guest = Guest(engine, built[name], tmp_path)
    assert guest.handle_raw(msgpack.packb(make_request())) == (ptr, length)
    if content is not None:
        assert guest.memory.read(guest.store, ptr, ptr + length) == content
    if name == "hostile/oversized_output":
        assert guest.memory.data_len(guest.store) == 320 * 65536 > length
    if name == "hostile/bad_pointer":
        assert guest.memory.data_len(guest.store) < ptr


def test_nonzero_exit_code_is_3(built, engine, tmp_path):
    guest = Guest(engine, built["hostile/nonzero_exit"], tmp_path)
    with pytest.raises(ExitTrap) as info:
        guest.exports["_start"](guest.store)
    assert info.value.code == 3
    assert guest.stdout.read_bytes() == b"Content-Type: text/plain\n\n"
