"""wasmtime's C API through ctypes: one fresh-instance call, as the C extension makes it.

wasmtime-py's Python layer wraps every export of every new instance and rebuilds
function types on each call, about half the cost of a fresh-instance call (FACTS.md).
This module calls the C API directly, through its own ctypes function objects declared
with plain integer/pointer argument types (no per-call type checks, no pointer objects).

`call_handler` and `call_export` are the ctypes twins of `_fastpath.call_handler` and
`call_export` (wasmhost/csrc/fastpath_call.c): the same steps, arguments and `Outcome`s,
returning a `RawCall` with the fields of the extension's `CallResult`; `callpath.py`
picks one of the two per process. Every ctypes call into wasmtime releases the GIL, so
wasm runs in parallel with the event loop and other invocations. Faults come back as
wasmtime error and trap pointers; `fault_from` turns them into a `GuestFault`, which the
sandbox classifies. Nothing here knows about HTTP or the registry.
"""

from __future__ import annotations

import ctypes
import threading
import time
from ctypes import c_bool, c_char_p, c_int32, c_int64, c_size_t, c_uint8, c_uint64, c_void_p
from enum import IntEnum
from typing import Any, Callable, NamedTuple, Sequence

import wasmtime
from wasmtime import _bindings as capi

EXTERN_FUNC = 0
EXTERN_MEMORY = 3
_OF = capi.wasmtime_extern_t.of.offset  # offset of the union inside wasmtime_extern_t
_VAL = ctypes.sizeof(capi.wasmtime_val_raw_t)
# What one Store may hold: one memory, one table of at most this many elements, one instance.
# The one place it is written: the extension gets it at init(), module_shape checks modules with it.
MAX_TABLE_ELEMENTS = 100_000


class Outcome(IntEnum):
    """How a call ended; the extension exports the same names and values (checked at load)."""

    OK = 0
    FAULT_INSTANTIATE = 1  # error, trap
    FAULT_RUN = 2  # error, trap, memory_size
    ALLOC_OUT_OF_BOUNDS = 3  # pointer (what wasmhost_alloc returned), memory_size
    RESPONSE_TOO_LARGE = 4  # length (declared)
    RESPONSE_OUT_OF_BOUNDS = 5  # pointer, length, memory_size
    MISSING_EXPORT = 6  # export: 0 alloc, 1 handle, 2 memory, 3 the entry point, 4 _initialize


class RawCall(NamedTuple):
    """What one fresh-instance call did: the fields of `_fastpath.CallResult`, in its order."""

    outcome: int
    response: bytes | None = None  # the handler's answer (OK)
    error: int = 0  # wasmtime_error_t* of a fault (the receiver owns it)
    trap: int = 0  # wasm_trap_t* of a fault (likewise)
    memory_size: int = 0
    pointer: int = 0
    length: int = 0
    export: int = 0
    fuel_used: int = 0
    instantiate_ns: int = 0
    run_ns: int = 0
    stdout: bytes | None = None  # what a WAGI program wrote to fd 1 (call_export)
    stdout_overflow: bool = False
    log: bytes | None = b""
    log_truncated: bool = False
    over_budget: bool = False


def _fn(name: str, restype: Any, *argtypes: Any) -> Any:
    """A private ctypes function object, so our argtypes never affect wasmtime-py's."""
    fn = capi.dll._FuncPtr((name, capi.dll))
    fn.restype = restype
    fn.argtypes = argtypes
    return fn


P = c_void_p
_store_new = _fn("wasmtime_store_new", P, P, P, P)
_store_context = _fn("wasmtime_store_context", P, P)
_store_delete = _fn("wasmtime_store_delete", None, P)
_store_limiter = _fn("wasmtime_store_limiter", None, P, c_int64, c_int64, c_int64, c_int64, c_int64)
_set_fuel = _fn("wasmtime_context_set_fuel", P, P, c_uint64)
_get_fuel = _fn("wasmtime_context_get_fuel", P, P, P)
_set_epoch_deadline = _fn("wasmtime_context_set_epoch_deadline", None, P, c_uint64)
_set_wasi = _fn("wasmtime_context_set_wasi", P, P, P)
_instantiate_pre = _fn("wasmtime_instance_pre_instantiate", P, P, P, P, P)
_export_get = _fn("wasmtime_instance_export_get", c_bool, P, P, c_char_p, c_size_t, P)
_call_unchecked = _fn("wasmtime_func_call_unchecked", P, P, P, P, c_size_t, P)
_memory_data = _fn("wasmtime_memory_data", P, P, P)
_memory_data_size = _fn("wasmtime_memory_data_size", c_size_t, P, P)
_caller_context = _fn("wasmtime_caller_context", P, P)
_context_get_data = _fn("wasmtime_context_get_data", P, P)
_caller_export_get = _fn("wasmtime_caller_export_get", c_bool, P, c_char_p, c_size_t, P)
_trap_new = _fn("wasmtime_trap_new", P, c_char_p, c_size_t)
_func_type = _fn("wasmtime_func_type", P, P, P)
_functype_params = _fn("wasm_functype_params", P, P)
_functype_results = _fn("wasm_functype_results", P, P)
_functype_delete = _fn("wasm_functype_delete", None, P)
_error_delete = _fn("wasmtime_error_delete", None, P)
_wasi_config_new = _fn("wasi_config_new", P)
_wasi_set_argv = _fn("wasi_config_set_argv", c_bool, P, c_size_t, P)
_wasi_set_env = _fn("wasi_config_set_env", c_bool, P, c_size_t, P, P)
_wasi_set_stdin_bytes = _fn("wasi_config_set_stdin_bytes", None, P, P)
_byte_vec_new = _fn("wasm_byte_vec_new", None, P, c_size_t, P)
_define_func_unchecked = _fn("wasmtime_linker_define_func_unchecked", P, P, c_char_p, c_size_t,
                             c_char_p, c_size_t, P, P, P, P)

_i32_at = c_int32.from_address
_i64_at = c_int64.from_address


def address(obj: Any) -> int:
    """The raw address behind a wasmtime-py object's pointer."""
    return ctypes.cast(obj.ptr(), c_void_p).value or 0


class GuestFault(Exception):
    """The guest stopped abnormally: a trap, a WASI exit or a runtime error."""

    def __init__(self, message: str, *, trap_code: str | None = None,
                 exit_code: int | None = None, during: str = "run") -> None:
        super().__init__(message)
        self.message = message
        self.trap_code = trap_code
        self.exit_code = exit_code
        self.during = during  # "instantiate" or "run"


def _fault_from(error: int | None, trap: int | None, during: str) -> GuestFault:
    """Turn a wasmtime error or trap pointer into a GuestFault (taking ownership)."""
    if trap:
        obj = wasmtime.Trap._from_ptr(ctypes.cast(trap, ctypes.POINTER(capi.wasm_trap_t)))
        code = obj.trap_code
        return GuestFault(first_line(obj.message), trap_code=code.name.lower() if code else None, during=during)
    err = wasmtime.WasmtimeError._from_ptr(ctypes.cast(error, ctypes.POINTER(capi.wasmtime_error_t)))
    if isinstance(err, wasmtime.ExitTrap):
        return GuestFault(f"exited with status {err.code}", exit_code=err.code, during=during)
    return GuestFault(first_line(str(err)), during=during)


def first_line(message: str) -> str:
    """wasmtime messages end in a wasm backtrace; keep the cause for users."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if line.startswith("Caused by:") and i + 1 < len(lines):
            return lines[i + 1].lstrip("0123456789: ")
    return lines[0] if lines else "unknown error"


class _Scratch(ctypes.Structure):
    """Out-parameters of one invocation, allocated once per thread."""

    _fields_ = [
        ("instance", capi.wasmtime_instance_t),
        ("externs", capi.wasmtime_extern_t * 4),
        ("args", capi.wasmtime_val_raw_t * 4),
        ("trap", c_void_p),
        ("fuel", c_uint64),
        ("key", ctypes.c_int64),
    ]


class _ScratchAddrs:
    __slots__ = ("buf", "instance", "externs", "args", "trap", "fuel", "key")

    def __init__(self) -> None:
        self.buf = _Scratch()
        base = ctypes.addressof(self.buf)
        self.instance = base + _Scratch.instance.offset
        self.externs = base + _Scratch.externs.offset
        self.args = base + _Scratch.args.offset
        self.trap = base + _Scratch.trap.offset
        self.fuel = base + _Scratch.fuel.offset
        self.key = base + _Scratch.key.offset


_local = threading.local()


def _scratch() -> _ScratchAddrs:
    try:
        return _local.scratch
    except AttributeError:
        _local.scratch = _ScratchAddrs()
        return _local.scratch


# Outcomes as plain ints, for the comparisons of every call (an IntEnum member is a slower name).
_OK, _FAULT_INSTANTIATE, _FAULT_RUN, _ALLOC_OOB, _TOO_LARGE, _RESPONSE_OOB, _MISSING = (int(o) for o in Outcome)


def _open(s: _ScratchAddrs, engine: int, pre: int, key: int, fuel: int, memory_bytes: int, ticks: int,
          wasi: int) -> tuple[int, int, int, int]:
    """A Store with fuel, memory cap, deadline and WASI (which it takes over), and the module
    instantiated in it: (store, ctx, error, trap), as fastpath_call.c's start()."""
    s.buf.key = key
    # Store data = a struct whose first field is the key (fastpath.h's hoststate_t starts alike).
    store = _store_new(engine, s.key, None)
    ctx = _store_context(store)
    _store_limiter(store, memory_bytes, MAX_TABLE_ELEMENTS, 1, 1, 1)
    error = _set_fuel(ctx, fuel) or 0
    _set_epoch_deadline(ctx, ticks)
    if wasi:
        wasi_error = _set_wasi(ctx, wasi) or 0
        if not error:
            error = wasi_error
        elif wasi_error:
            _error_delete(wasi_error)
    trap = 0
    if not error:
        s.buf.trap = None
        error = _instantiate_pre(pre, ctx, s.instance, s.trap) or 0
        trap = s.buf.trap or 0
    return store, ctx, error, trap


def _close(s: _ScratchAddrs, store: int, ctx: int, fuel: int) -> int:
    """Delete the Store; the fuel the call used."""
    error = _get_fuel(ctx, s.fuel)
    left = s.buf.fuel if not error else 0
    if error:
        _error_delete(error)
    _store_delete(store)
    return fuel - left


def _export(s: _ScratchAddrs, ctx: int, name: bytes, kind: int, slot: int) -> int:
    """The address of export `name` of `kind`, in extern slot `slot` (0-2; 3 is the host
    functions'), or 0."""
    at = s.externs + 32 * slot
    if _export_get(ctx, s.instance, name, len(name), at) and c_uint8.from_address(at).value == kind:
        return at + _OF
    return 0


def _nullary(ctx: int, func: int) -> bool:
    """Whether a function takes and returns nothing. Deploy checks this already; this is the
    second line of defence: an unchecked call with the wrong arity corrupts memory."""
    ty = _func_type(ctx, func)
    try:
        return bool(ty) and c_size_t.from_address(_functype_params(ty)).value == 0 \
            and c_size_t.from_address(_functype_results(ty)).value == 0
    finally:
        if ty:
            _functype_delete(ty)


def _call(s: _ScratchAddrs, ctx: int, func: int) -> tuple[int, int]:
    """Call with the raw values in the scratch args: (error, trap)."""
    s.buf.trap = None
    error = _call_unchecked(ctx, func, s.args, 4, s.trap) or 0
    return error, s.buf.trap or 0


def _memory_size(s: _ScratchAddrs, ctx: int) -> int:
    memory = _export(s, ctx, b"memory", EXTERN_MEMORY, 2)
    return _memory_data_size(ctx, memory) if memory else 0


def call_handler(engine: int, pre: int, key: int, fuel: int, memory_bytes: int, ticks: int, wasi: int,
                 initialize: bool, request: bytes, max_response: int, host_calls_left: int,
                 max_log_bytes: int, stdio: Any = None) -> RawCall:
    """One fresh-instance call of a handler module (`_fastpath.call_handler`'s twin). On this
    path log lines are written by Python host functions into `stdio` (the call's
    hostcalls.CallState), whose log and flags go into the result."""
    s = _scratch()
    t0 = time.perf_counter_ns()
    store, ctx, error, trap = _open(s, engine, pre, key, fuel, memory_bytes, ticks, wasi)
    t1 = time.perf_counter_ns()
    outcome, response, memory_size, pointer, length, which = _OK, None, 0, 0, 0, 0
    if error or trap:
        outcome = _FAULT_INSTANTIATE
    else:
        if initialize:
            func = _export(s, ctx, b"_initialize", EXTERN_FUNC, 0)
            if not func or not _nullary(ctx, func):
                outcome, which = _MISSING, 4
            else:
                error, trap = _call(s, ctx, func)
                if error or trap:
                    outcome = _FAULT_RUN
        if outcome == _OK:
            alloc = _export(s, ctx, b"wasmhost_alloc", EXTERN_FUNC, 0)
            handle = _export(s, ctx, b"wasmhost_handle", EXTERN_FUNC, 1)
            memory = _export(s, ctx, b"memory", EXTERN_MEMORY, 2)
            if not alloc or not handle or not memory:
                outcome, which = _MISSING, 0 if not alloc else 1 if not handle else 2
            else:
                args = s.args
                set_i32(args, 0, len(request))
                error, trap = _call(s, ctx, alloc)
                if error or trap:
                    outcome = _FAULT_RUN
                else:
                    ptr, size = get_i32(args, 0), _memory_data_size(ctx, memory)
                    if ptr + len(request) > size:
                        outcome, pointer, memory_size = _ALLOC_OOB, ptr, size
                    else:
                        ctypes.memmove((_memory_data(ctx, memory) or 0) + ptr, request, len(request))
                        set_i32(args, 0, ptr)
                        set_i32(args, 1, len(request))
                        error, trap = _call(s, ctx, handle)
                        if error or trap:
                            outcome = _FAULT_RUN
                        else:
                            packed = get_i64(args, 0)
                            out_ptr, out_len = packed >> 32, packed & 0xFFFFFFFF
                            size = _memory_data_size(ctx, memory)
                            if out_len > max_response:
                                outcome, length = _TOO_LARGE, out_len
                            elif out_ptr + out_len > size:
                                outcome, pointer, length, memory_size = _RESPONSE_OOB, out_ptr, out_len, size
                            else:
                                response = ctypes.string_at((_memory_data(ctx, memory) or 0) + out_ptr, out_len)
        if outcome == _FAULT_RUN:
            memory_size = _memory_size(s, ctx)
    t2 = time.perf_counter_ns()
    used = _close(s, store, ctx, fuel)
    if stdio is None:
        return RawCall(outcome, response, error, trap, memory_size, pointer, length, which, used, t1 - t0, t2 - t1)
    return RawCall(outcome, response, error, trap, memory_size, pointer, length, which, used, t1 - t0, t2 - t1,
                   None, False, bytes(stdio.log), stdio.log_truncated, stdio.over_budget)


def call_export(engine: int, pre: int, key: int, fuel: int, memory_bytes: int, ticks: int, wasi: int,
                export: bytes, capture_stdout: bool, max_stdout: int, max_log_bytes: int,
                stdio: Any = None) -> RawCall:
    """One fresh-instance run of a `() -> ()` export (`_fastpath.call_export`'s twin); what
    the program writes goes, on this path, into `stdio` (the call's hostcalls.CallState)."""
    s = _scratch()
    t0 = time.perf_counter_ns()
    store, ctx, error, trap = _open(s, engine, pre, key, fuel, memory_bytes, ticks, wasi)
    t1 = time.perf_counter_ns()
    outcome, memory_size, which = _OK, 0, 0
    if error or trap:
        outcome = _FAULT_INSTANTIATE
    else:
        func = _export(s, ctx, export, EXTERN_FUNC, 0)
        if not func or not _nullary(ctx, func):
            outcome, which = _MISSING, 3
        else:
            error, trap = _call(s, ctx, func)
            if error or trap:
                outcome, memory_size = _FAULT_RUN, _memory_size(s, ctx)
    t2 = time.perf_counter_ns()
    used = _close(s, store, ctx, fuel)
    if stdio is None:
        return RawCall(outcome, None, error, trap, memory_size, 0, 0, which, used, t1 - t0, t2 - t1)
    return RawCall(outcome, None, error, trap, memory_size, 0, 0, which, used, t1 - t0, t2 - t1,
                   bytes(stdio.stdout) if capture_stdout else None, stdio.stdout_overflow, bytes(stdio.log),
                   stdio.log_truncated, False)


def wasi_config(argv: Sequence[bytes], env: Sequence[tuple[bytes, bytes]], stdin: bytes) -> int:
    """A locked-down WASI config: no preopens, no host env, no sockets, stdin from bytes,
    stdout/stderr unset (our fd_write host function captures them). The caller must
    hand it to a store (which takes ownership) or free it with `free_wasi_config`."""
    config = _wasi_config_new()
    argv_arr = (c_char_p * len(argv))(*argv)
    _wasi_set_argv(config, len(argv), ctypes.addressof(argv_arr))
    if env:
        names = (c_char_p * len(env))(*(k for k, _ in env))
        values = (c_char_p * len(env))(*(v for _, v in env))
        _wasi_set_env(config, len(env), ctypes.addressof(names), ctypes.addressof(values))
    if stdin:
        buf = (c_uint8 * len(stdin)).from_buffer_copy(stdin)
        vec = capi.wasm_byte_vec_t()
        _byte_vec_new(ctypes.addressof(vec), len(stdin), ctypes.addressof(buf))
        _wasi_set_stdin_bytes(config, ctypes.addressof(vec))  # takes ownership of the vec's bytes
    return config


def fault_from(error: int, trap: int, during: str) -> GuestFault:
    """The fault of a call's error and trap pointers (either call path's), taking them over."""
    return _fault_from(error or None, trap or None, during)


def set_i32(args: int, index: int, value: int) -> None:
    _i32_at(args + _VAL * index).value = value


def get_i32(args: int, index: int) -> int:
    return _i32_at(args + _VAL * index).value & 0xFFFFFFFF


def get_i64(args: int, index: int) -> int:
    return _i64_at(args + _VAL * index).value & 0xFFFFFFFFFFFFFFFF


# ---- host functions -------------------------------------------------------------------

_callback_type = ctypes.CFUNCTYPE(c_size_t, c_void_p, c_void_p, c_void_p, c_size_t)
HostBody = Callable[[int, int, int, int], "str | None"]


def define_host_func(linker: wasmtime.Linker, module: str, name: str, ty: wasmtime.FuncType,
                     body: HostBody) -> object:
    """Define `module.name` on the linker, for every store.

    `body(context_key, memory_address, memory_size, args_address)` runs with the
    caller's exported memory; it returns None on success or a message to trap
    with. It must not raise (wasmtime-py would leak the exception into another
    thread's call, FACTS.md); anything it raises becomes a trap here.
    Returns the ctypes callback, which the caller must keep alive.
    """
    label = f"host function {module}.{name} failed"

    def callback(_env: int, caller: int, args: int, _nargs: int) -> int:
        try:
            ctx = _caller_context(caller)
            data = _context_get_data(ctx)
            key = ctypes.c_int64.from_address(data).value if data else 0
            slot = _scratch().externs + 32 * 3  # slot 3: the host functions' (see _export)
            if _caller_export_get(caller, b"memory", 6, slot) and c_uint8.from_address(slot).value == EXTERN_MEMORY:
                mem = slot + _OF
                addr, size = _memory_data(ctx, mem) or 0, _memory_data_size(ctx, mem)
            else:
                addr, size = 0, 0
            message = body(key, addr, size, args)
        except BaseException as exc:  # noqa: BLE001 - must never propagate into wasmtime
            message = f"{label}: {type(exc).__name__}"
        if message is None:
            return 0
        raw = message.encode()
        return _trap_new(raw, len(raw)) or 0

    cb = _callback_type(callback)
    mod_b, name_b = module.encode(), name.encode()
    error = _define_func_unchecked(address(linker), mod_b, len(mod_b), name_b, len(name_b),
                                   address(ty), ctypes.cast(cb, c_void_p), None, None)
    if error:
        raise _fault_from(error, None, "setup")
    return cb


# ---- the C extension (wasmhost/csrc/) ---------------------------------------------------

EXTENSION_FUNCTIONS = (  # order = the `api_t` struct in csrc/fastpath.h
    "wasmtime_store_new", "wasmtime_store_context", "wasmtime_store_delete", "wasmtime_store_limiter",
    "wasmtime_context_set_fuel", "wasmtime_context_get_fuel", "wasmtime_context_set_epoch_deadline",
    "wasmtime_context_set_wasi", "wasmtime_instance_pre_instantiate", "wasmtime_instance_export_get",
    "wasmtime_func_call_unchecked", "wasmtime_memory_data", "wasmtime_memory_data_size",
    "wasmtime_error_delete", "wasi_config_delete", "wasmtime_func_type", "wasm_functype_params",
    "wasm_functype_results", "wasm_functype_delete", "wasmtime_caller_context", "wasmtime_caller_export_get",
    "wasmtime_context_get_data", "wasmtime_trap_new", "wasmtime_linker_define_func_unchecked",
    "wasi_config_new", "wasi_config_set_argv", "wasi_config_set_env", "wasi_config_set_stdin_bytes",
    "wasm_byte_vec_new",
)


_loaded: list[Any] = []  # [module or None] once load_extension has run


def load_extension() -> Any:
    """The C extension, initialised with wasmtime's function addresses, or None when it
    was not built (then this module's `call_handler` and `call_export` do the same)."""
    if not _loaded:
        _loaded.append(_load_extension())
    return _loaded[0]


def _load_extension() -> Any:
    try:
        from . import _fastpath  # type: ignore[attr-defined]
    except ImportError:
        return None
    addresses = tuple(ctypes.cast(getattr(capi.dll, name), c_void_p).value for name in EXTENSION_FUNCTIONS)
    sizes = (ctypes.sizeof(capi.wasmtime_instance_t), ctypes.sizeof(capi.wasmtime_extern_t),
             ctypes.sizeof(capi.wasmtime_val_raw_t))
    try:
        _fastpath.init(addresses, sizes, MAX_TABLE_ELEMENTS)
    except (RuntimeError, ValueError):  # another wasmtime than it was written for: use ctypes
        return None
    except TypeError:
        raise RuntimeError("wasmhost._fastpath was built from other sources (its init() takes other "
                           "arguments); rebuild it (pip install -e .)") from None
    if any(getattr(_fastpath, outcome.name, None) != outcome.value for outcome in Outcome):
        raise RuntimeError("wasmhost._fastpath was built from other sources: its outcome codes differ from "
                           "native.Outcome; rebuild it (pip install -e .)")
    return _fastpath
