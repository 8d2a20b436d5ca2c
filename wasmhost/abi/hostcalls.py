"""Host functions a guest may import, and the per-invocation state they write to.

- `wasmhost.log(ptr, len)`: one line for the invocation's log (both interfaces).
- `wasi_snapshot_preview1.fd_write`: shadows WASI's own so that stdout/stderr land
  in Python buffers with a hard cap. Configuring WASI stdout through wasmtime
  costs 200-300 µs per call (FACTS.md); a host function costs one GIL hop per
  write, and lets us stop an output flood the moment it passes its limit.

State is keyed by the Store context's address, registered by the sandbox before
instantiation and removed after. Host functions never raise: they return a trap
message instead.
"""

from __future__ import annotations

import ctypes
import struct
from dataclasses import dataclass, field

import wasmtime

from ..engine import WasmEngine
from ..native import define_host_func, get_i32, set_i32

WASI_MODULE = "wasi_snapshot_preview1"
ERRNO_SUCCESS = 0
ERRNO_BADF = 8
ERRNO_FAULT = 21
ERRNO_INVAL = 28
MAX_IOVECS = 1024


@dataclass(slots=True)
class CallState:
    """What one invocation's guest has written so far."""

    max_log_bytes: int
    max_stdout_bytes: int
    capture_stdout: bool  # WAGI: stdout is the response; handler: stdout is log
    log: bytearray = field(default_factory=bytearray)
    log_truncated: bool = False
    stdout: bytearray = field(default_factory=bytearray)
    stdout_overflow: bool = False

    def add_log(self, data: bytes) -> None:
        room = self.max_log_bytes - len(self.log)
        if len(data) > room:
            self.log_truncated = True
            data = data[:max(room, 0)]
        self.log += data

    def log_lines(self) -> list[str]:
        return self.log.decode("utf-8", "replace").splitlines()


STATES: dict[int, CallState] = {}


def _log(key: int, addr: int, size: int, args: int) -> str | None:
    state = STATES.get(key)
    ptr, length = get_i32(args, 0), get_i32(args, 1)
    if ptr + length > size:
        return "wasmhost.log: pointer/length outside linear memory"
    if state is None:
        return None
    if len(state.log) >= state.max_log_bytes:
        state.log_truncated = True
        return None
    state.add_log(ctypes.string_at(addr + ptr, min(length, state.max_log_bytes)) + b"\n")
    return None


def _fd_write(key: int, addr: int, size: int, args: int) -> str | None:
    fd, iovs, count, out = get_i32(args, 0), get_i32(args, 1), get_i32(args, 2), get_i32(args, 3)
    state = STATES.get(key)
    if state is None or fd not in (1, 2):
        set_i32(args, 0, ERRNO_BADF)
        return None
    if count > MAX_IOVECS:
        set_i32(args, 0, ERRNO_INVAL)
        return None
    if iovs + 8 * count > size or out + 4 > size:
        set_i32(args, 0, ERRNO_FAULT)
        return None
    table = ctypes.string_at(addr + iovs, 8 * count)
    written = 0
    chunks: list[bytes] = []
    for i in range(count):
        buf, length = struct.unpack_from("<II", table, 8 * i)
        if buf + length > size:
            set_i32(args, 0, ERRNO_FAULT)
            return None
        chunks.append(ctypes.string_at(addr + buf, length))
        written += length
    data = b"".join(chunks)
    if fd == 1 and state.capture_stdout:
        if len(state.stdout) + len(data) > state.max_stdout_bytes:
            state.stdout_overflow = True
            return "output exceeds the response size limit"
        state.stdout += data
    else:
        state.add_log(data)
    ctypes.memmove(addr + out, struct.pack("<I", written), 4)
    set_i32(args, 0, ERRNO_SUCCESS)
    return None


@dataclass(frozen=True, slots=True)
class Linkers:
    """Two linkers per engine: the bare one and the one with WASI."""

    plain: wasmtime.Linker
    wasi: wasmtime.Linker
    _keepalive: tuple[object, ...]


def build_linkers(wasm: WasmEngine) -> Linkers:
    i32 = wasmtime.ValType.i32()
    log_type = wasmtime.FuncType([i32, i32], [])
    fd_write_type = wasmtime.FuncType([i32, i32, i32, i32], [i32])
    keep: list[object] = []

    plain = wasmtime.Linker(wasm.engine)
    keep.append(define_host_func(plain, "wasmhost", "log", log_type, _log))

    wasi = wasmtime.Linker(wasm.engine)
    wasi.define_wasi()
    wasi.allow_shadowing = True
    keep.append(define_host_func(wasi, WASI_MODULE, "fd_write", fd_write_type, _fd_write))
    keep.append(define_host_func(wasi, "wasmhost", "log", log_type, _log))
    wasi.allow_shadowing = False
    return Linkers(plain, wasi, tuple(keep))
