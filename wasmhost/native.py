"""The C-API fast path for one invocation.

wasmtime-py's Python layer wraps every export of every new instance and rebuilds
function types on each call; that is about half the cost of a fresh-instance
call (FACTS.md). This module calls wasmtime's C API directly, through its own
ctypes function objects declared with plain integer/pointer argument types (no
per-call ctypes type checks, no pointer objects), for the few operations an
invocation needs: new Store, limits, WASI context, instantiate an InstancePre,
look up an export, call it, read and write linear memory, drop the Store.

Every ctypes call into wasmtime releases the GIL, so wasm runs in parallel with
the event loop and other invocations.

Failures surface as `GuestFault` (a trap, an exit status or a runtime error),
which `sandbox.py` classifies; nothing here knows about HTTP or the registry.
"""

from __future__ import annotations

import ctypes
import threading
from ctypes import c_bool, c_char_p, c_int32, c_int64, c_size_t, c_uint8, c_uint64, c_void_p
from typing import Any, Callable, Sequence

import wasmtime
from wasmtime import _bindings as capi

EXTERN_FUNC = 0
EXTERN_MEMORY = 3
_OF = capi.wasmtime_extern_t.of.offset  # offset of the union inside wasmtime_extern_t
_VAL = ctypes.sizeof(capi.wasmtime_val_raw_t)


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


class NativeCall:
    """One Store and at most one instance in it; closed exactly once.

    Export slots: each `export()` fills one of three extern slots of the thread's
    scratch buffer (round robin) and returns the address of the func/memory in
    it, so at most three exports are live at once. Slot 3 is the host functions'.
    """

    __slots__ = ("store", "ctx", "s", "fuel", "_slot")

    def __init__(self, engine_ptr: int, key: int, fuel: int, memory_bytes: int, deadline_ticks: int) -> None:
        self.s = _scratch()
        self.s.buf.key = key
        # Store data = a struct whose first field is the key (the layout _fastpath.c uses too).
        self.store = _store_new(engine_ptr, self.s.key, None)
        self.ctx = ctx = _store_context(self.store)
        self.fuel = fuel
        self._slot = 0
        # One memory, one table, one instance: enough for any core module we accept.
        _store_limiter(self.store, memory_bytes, 100_000, 1, 1, 1)
        error = _set_fuel(ctx, fuel)
        if error:  # pragma: no cover - fuel is always enabled on our engines
            raise _fault_from(error, None, "setup")
        _set_epoch_deadline(ctx, deadline_ticks)

    def set_wasi(self, config: int) -> None:
        """Attach a config from `wasi_config()`; the store takes ownership of it."""
        error = _set_wasi(self.ctx, config)
        if error:
            raise _fault_from(error, None, "instantiate")

    def instantiate(self, pre_ptr: int) -> None:
        s = self.s
        s.buf.trap = None
        error = _instantiate_pre(pre_ptr, self.ctx, s.instance, s.trap)
        if error or s.buf.trap:
            raise _fault_from(error, s.buf.trap, "instantiate")

    def export(self, name: bytes, kind: int) -> int:
        """Address of the exported func or memory `name` (valid for this call)."""
        slot = self.s.externs + 32 * (self._slot % 3)
        self._slot += 1
        if not _export_get(self.ctx, self.s.instance, name, len(name), slot) or \
                c_uint8.from_address(slot).value != kind:
            what = "memory" if kind == EXTERN_MEMORY else "function"
            raise GuestFault(f"the module has no exported {what} {name.decode(errors='replace')!r}")
        return slot + _OF

    def nullary_export(self, name: bytes) -> int:
        """A `() -> ()` function export. Deploy checks this already; checking again
        here is the second line of defence: an unchecked call with the wrong arity
        corrupts memory instead of failing."""
        func = self.export(name, EXTERN_FUNC)
        ty = _func_type(self.ctx, func)
        try:
            ok = bool(ty) and c_size_t.from_address(_functype_params(ty)).value == 0 \
                and c_size_t.from_address(_functype_results(ty)).value == 0
        finally:
            if ty:
                _functype_delete(ty)
        if not ok:
            raise GuestFault(f"export {name.decode(errors='replace')!r} is not a () -> () function")
        return func

    @property
    def args(self) -> int:
        """Address of the raw argument/result slots (4 × wasmtime_val_raw_t)."""
        return self.s.args

    def call(self, func: int, nargs: int) -> None:
        """Call with raw values in `args` (types were checked at deploy)."""
        s = self.s
        s.buf.trap = None
        error = _call_unchecked(self.ctx, func, s.args, nargs, s.trap)
        if error or s.buf.trap:
            raise _fault_from(error, s.buf.trap, "run")

    def memory_span(self, memory: int) -> tuple[int, int]:
        """(address, size) of a linear memory now; valid until the next wasm call."""
        return _memory_data(self.ctx, memory) or 0, _memory_data_size(self.ctx, memory)

    def fuel_used(self) -> int:
        error = _get_fuel(self.ctx, self.s.fuel)
        if error:
            _error_delete(error)
            return self.fuel
        return self.fuel - self.s.buf.fuel

    def close(self) -> None:
        if self.store:
            _store_delete(self.store)
            self.store = None
            self.ctx = None


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
    """Public form of the error/trap conversion, for the C fast path's results."""
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
            slot = _scratch().externs + 32 * 3  # slot 3 is never used by NativeCall.export
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


# ---- the C fast path (wasmhost/_fastpath.c) ------------------------------------------

FASTPATH_FUNCTIONS = (  # order = the `api` struct in _fastpath.c
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


_loaded: list[Any] = []  # [module or None] once load_fastpath has run


def load_fastpath() -> Any:
    """The compiled fast path, initialised with wasmtime's function addresses, or
    None when it was not built (then native.NativeCall does the same via ctypes)."""
    if not _loaded:
        _loaded.append(_load_fastpath())
    return _loaded[0]


def _load_fastpath() -> Any:
    try:
        from . import _fastpath  # type: ignore[attr-defined]
    except ImportError:
        return None
    addresses = tuple(ctypes.cast(getattr(capi.dll, name), c_void_p).value for name in FASTPATH_FUNCTIONS)
    sizes = (ctypes.sizeof(capi.wasmtime_instance_t), ctypes.sizeof(capi.wasmtime_extern_t),
             ctypes.sizeof(capi.wasmtime_val_raw_t))
    try:
        _fastpath.init(addresses, sizes)
    except (RuntimeError, ValueError):
        return None
    return _fastpath


def read_memory(addr: int, size: int, ptr: int, length: int) -> bytes | None:
    """Bytes [ptr, ptr+length) of a memory at `addr` of `size`, or None if out of bounds."""
    if ptr < 0 or length < 0 or ptr + length > size:
        return None
    return ctypes.string_at(addr + ptr, length)


def write_memory(addr: int, size: int, ptr: int, data: bytes) -> bool:
    if ptr < 0 or ptr + len(data) > size:
        return False
    ctypes.memmove(addr + ptr, data, len(data))
    return True
