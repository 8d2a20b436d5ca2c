"""Host functions a guest may import, and the per-invocation state they write to.

- `wasmhost.log(ptr, len)`: one line for the invocation's log (both interfaces).
- `wasi_snapshot_preview1.fd_write`: shadows WASI's own so that stdout/stderr land
  in Python buffers with a hard cap. Configuring WASI stdout through wasmtime
  costs more than a whole call (bench/design-figures.md: wasi-stdout); a host function costs one GIL hop
  per write, and lets us stop an output flood the moment it passes its limit. It
  never copies more guest memory than the caps leave room for.
- `wasi_snapshot_preview1.proc_exit`: shadows WASI's own, which reports a status of 126
  or more only as "invalid exit status" and loses it; ours records the status the guest
  passed and stops it with a trap (`exit_fault` turns that back into an exit). Rare
  (a non-zero exit, or a runtime that always exits, as Go's does), so it stays Python.
- `wasi_snapshot_preview1.poll_oneoff`: shadows WASI's own because epoch
  interruption cannot fire inside a host call: wasmtime's sleep would run straight
  through the function's deadline. Ours sleeps at most until the deadline and then
  traps (classified `timeout`).

A call's `CallState` is registered in `STATES` under an integer key by the sandbox before
the call and removed after; a host function finds it through the Store's data, a struct
whose first field is that key (on both call paths). Host functions never raise: they
return a trap message instead. On the C path `wasmhost.log` and `fd_write` are the
extension's own (csrc/fastpath_host.c), with the same checks, errnos and traps.
"""

from __future__ import annotations

import ctypes
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import wasmtime

from .engine import WasmEngine
from .native import GuestFault, address, define_host_func, get_i32, set_i32

WASI_MODULE = "wasi_snapshot_preview1"
ERRNO_SUCCESS = 0
ERRNO_BADF = 8
ERRNO_FAULT = 21
ERRNO_INVAL = 28
ERRNO_NOTSUP = 58
MAX_IOVECS = 1024
MAX_SUBSCRIPTIONS = 1024
DEADLINE_TRAP = "the deadline passed while the guest was sleeping"


@dataclass(slots=True)
class CallState:
    """What one invocation's guest has written so far."""

    max_log_bytes: int
    max_stdout_bytes: int
    capture_stdout: bool  # WAGI: stdout is the response; handler: stdout is log
    log: bytearray = field(default_factory=bytearray)
    log_truncated: bool = False
    stdout: bytearray | bytes = field(default_factory=bytearray)  # bytes when the C fd_write captured it
    stdout_overflow: bool = False
    deadline: float = float("inf")  # time.monotonic() when the call's wall-clock budget ends
    slept_past_deadline: bool = False
    host_calls_left: int = -1  # an inline attempt's budget of host calls; < 0: unlimited
    over_budget: bool = False
    exit_code: int | None = None  # what the guest passed to proc_exit (as a signed i32)

    def add_log(self, data: bytes) -> None:
        room = self.max_log_bytes - len(self.log)
        if len(data) > room:
            self.log_truncated = True
            data = data[:max(room, 0)]
        self.log += data

    def log_lines(self) -> list[str]:
        return self.log.decode("utf-8", "replace").splitlines()


STATES: dict[int, CallState] = {}


OVER_BUDGET_TRAP = "inline attempt over its host-call budget (the call is rerun on a worker)"


def _log(key: int, addr: int, size: int, args: int) -> str | None:
    state = STATES.get(key)
    if state is not None and state.host_calls_left >= 0:
        if state.host_calls_left == 0:
            state.over_budget = True
            return OVER_BUDGET_TRAP
        state.host_calls_left -= 1
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
    spans = [struct.unpack_from("<II", table, 8 * i) for i in range(count)]
    if any(buf + length > size for buf, length in spans):
        set_i32(args, 0, ERRNO_FAULT)
        return None
    written = sum(length for _, length in spans)
    if fd == 1 and state.capture_stdout:
        if len(state.stdout) + written > state.max_stdout_bytes:
            state.stdout_overflow = True
            return "output exceeds the response size limit"
        for buf, length in spans:
            state.stdout += ctypes.string_at(addr + buf, length)
    else:
        # Copy only what still fits in the log; the rest is reported written and dropped.
        for buf, length in spans:
            room = state.max_log_bytes - len(state.log)
            if room <= 0:
                state.log_truncated = state.log_truncated or length > 0
                break
            state.add_log(ctypes.string_at(addr + buf, min(length, room)))
            if length > room:
                state.log_truncated = True
    ctypes.memmove(addr + out, struct.pack("<I", written), 4)
    set_i32(args, 0, ERRNO_SUCCESS)
    return None


PROC_EXIT_TRAP = "the guest called proc_exit"


def _proc_exit(key: int, addr: int, size: int, args: int) -> str | None:
    """WASI proc_exit(rval): note the status and end the guest (the trap is read back as an
    exit by `exit_fault`). The status is kept as wasm passed it, read as a signed i32 like
    wasmtime's own exit statuses: `proc_exit(-1)` is -1, not 4294967295."""
    status = get_i32(args, 0)
    state = STATES.get(key)
    if state is not None:
        state.exit_code = status - (1 << 32) if status >= 1 << 31 else status
    return PROC_EXIT_TRAP


def exit_fault(fault: GuestFault, state: CallState | None) -> GuestFault:
    """`fault` as the exit it is when the guest called our proc_exit, else `fault` itself."""
    if state is None or state.exit_code is None:
        return fault
    return GuestFault(f"exited with status {state.exit_code}", exit_code=state.exit_code, during=fault.during)


def _poll_oneoff(key: int, addr: int, size: int, args: int) -> str | None:
    """WASI poll_oneoff(in, out, nsubscriptions, nevents_ptr) -> errno, deadline-aware.

    fd subscriptions (stdin is bytes, stdout/stderr are buffers) are always ready;
    otherwise sleep until the earliest relative clock timeout, never past the
    invocation's deadline. Absolute monotonic timeouts are not supported (ENOTSUP):
    the guest's monotonic clock origin is wasmtime's, not ours.
    """
    state = STATES.get(key)
    sub_ptr, event_ptr, count, nevents_ptr = (get_i32(args, 0), get_i32(args, 1), get_i32(args, 2),
                                              get_i32(args, 3))
    if count == 0 or count > MAX_SUBSCRIPTIONS:
        set_i32(args, 0, ERRNO_INVAL)
        return None
    if sub_ptr + 48 * count > size or event_ptr + 32 * count > size or nevents_ptr + 4 > size:
        set_i32(args, 0, ERRNO_FAULT)
        return None
    subs = ctypes.string_at(addr + sub_ptr, 48 * count)
    ready: list[tuple[int, int, int]] = []  # (userdata, type, fd-or-0)
    clocks: list[tuple[float, int]] = []  # (seconds to wait, userdata)
    for i in range(count):
        userdata, tag = struct.unpack_from("<QB", subs, 48 * i)
        if tag == 0:  # clock
            clock_id, timeout_ns, _precision, flags = struct.unpack_from("<IxxxxQQH", subs, 48 * i + 16)
            if flags & 1:  # absolute time
                if clock_id != 0:
                    set_i32(args, 0, ERRNO_NOTSUP)
                    return None
                wait = timeout_ns / 1e9 - time.time()
            else:
                wait = timeout_ns / 1e9
            clocks.append((max(wait, 0.0), userdata))
        elif tag in (1, 2):
            ready.append((userdata, tag, 0))
        else:
            set_i32(args, 0, ERRNO_INVAL)
            return None
    events: list[bytes] = []
    if ready:
        for userdata, tag, _ in ready:
            events.append(struct.pack("<QHBxxxxxQHxxxxxx", userdata, 0, tag, 0, 0))
    else:
        wait, _ = min(clocks)
        deadline = state.deadline if state is not None else float("inf")
        remaining = deadline - time.monotonic()
        if wait > remaining:
            time.sleep(max(remaining, 0.0))
            if state is not None:
                state.slept_past_deadline = True
            return DEADLINE_TRAP
        time.sleep(wait)
        for clock_wait, userdata in clocks:
            if clock_wait <= wait:
                events.append(struct.pack("<QHBxxxxxQHxxxxxx", userdata, 0, 0, 0, 0))
    ctypes.memmove(addr + event_ptr, b"".join(events), 32 * len(events))
    ctypes.memmove(addr + nevents_ptr, struct.pack("<I", len(events)), 4)
    set_i32(args, 0, ERRNO_SUCCESS)
    return None


@dataclass(frozen=True, slots=True)
class Linkers:
    """Two linkers per engine: the bare one and the one with WASI."""

    without_wasi: wasmtime.Linker
    wasi: wasmtime.Linker
    _keepalive: tuple[object, ...]


def build_linkers(wasm: WasmEngine, extension: Any = None) -> Linkers:
    """With `extension` (the C extension, when the call path is C), `wasmhost.log` and the WASI
    `fd_write` are its C functions, which need no GIL and write into one ordered
    buffer per call; `poll_oneoff` and `proc_exit` stay in Python (they are rare).
    Without it, all four are the Python functions above."""
    i32 = wasmtime.ValType.i32()
    log_type = wasmtime.FuncType([i32, i32], [])
    fd_write_type = wasmtime.FuncType([i32, i32, i32, i32], [i32])
    keep: list[object] = [log_type]

    without_wasi = wasmtime.Linker(wasm.engine)
    if extension is not None:
        extension.define_log(address(without_wasi), address(log_type))
    else:
        keep.append(define_host_func(without_wasi, "wasmhost", "log", log_type, _log))

    wasi = wasmtime.Linker(wasm.engine)
    wasi.define_wasi()
    wasi.allow_shadowing = True
    if extension is not None:  # fd_write and log in C, into one ordered buffer, no GIL per write
        extension.define_wasi_stdio(address(wasi), address(fd_write_type), address(log_type))
        keep.append(fd_write_type)
    else:
        keep.append(define_host_func(wasi, WASI_MODULE, "fd_write", fd_write_type, _fd_write))
        keep.append(define_host_func(wasi, "wasmhost", "log", log_type, _log))
    keep.append(define_host_func(wasi, WASI_MODULE, "poll_oneoff", fd_write_type, _poll_oneoff))
    proc_exit_type = wasmtime.FuncType([i32], [])
    keep += [proc_exit_type, define_host_func(wasi, WASI_MODULE, "proc_exit", proc_exit_type, _proc_exit)]
    wasi.allow_shadowing = False
    return Linkers(without_wasi, wasi, tuple(keep))
