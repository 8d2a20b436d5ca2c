"""One invocation: fresh Store with fuel, memory cap and deadline; instantiate;
run through the guest interface; classify the outcome; discard everything.

Nothing survives a call: the Store (and with it the instance and its memory)
is deleted before `run` returns, whatever happened. Two interchangeable paths
do the wasmtime part: the compiled `_fastpath` (one C call with the GIL
released) and `native.NativeCall` (the same steps through ctypes), used when
the extension is not built or `Settings.fastpath` is off.
"""

from __future__ import annotations

import itertools
import logging
import time

from wasmtime import FuncType

from .abi import handler, wagi
from .abi.hostcalls import STATES, CallState, exit_fault
from .cache import PreparedModule
from .engine import WasmEngine
from .errors import (BadResponse, FuelExhausted, InternalError, InvalidModule, MemoryLimit, NonZeroExit,
                     Overloaded, Timeout, TooLarge, Trap, WasmhostError)
from .models import FunctionVersion, Invocation, Request, Route, Tier, Timings
from .native import EXTERN_MEMORY, GuestFault, NativeCall, fault_from, load_fastpath, wasi_config
from .settings import MIB, Settings

log = logging.getLogger("wasmhost.sandbox")

# Outcomes of _fastpath (see _fastpath.c).
OK, FAULT_INSTANTIATE, FAULT_RUN, ALLOC_OUT_OF_BOUNDS, RESPONSE_TOO_LARGE, RESPONSE_OUT_OF_BOUNDS, \
    MISSING_EXPORT = range(7)
MISSING_NAMES = ("wasmhost_alloc", "wasmhost_handle", "memory", "entry point", "_initialize")

_keys = itertools.count(1)  # per-invocation keys for host-function state (never 0)
_fastpath = load_fastpath()


class Sandbox:
    def __init__(self, wasm: WasmEngine, settings: Settings) -> None:
        self.wasm = wasm
        self.settings = settings
        self.fast = _fastpath if settings.fastpath else None

    @property
    def path(self) -> str:
        return "c" if self.fast is not None else "ctypes"

    def run(self, prepared: PreparedModule, version: FunctionVersion, request: Request,
            tier: Tier = "memory", load_seconds: float = 0.0) -> Invocation:
        """Run `request` through a fresh instance; never raises for guest faults."""
        if self.plain_handler(prepared, version):
            return self._run_plain(prepared, version, request, tier, load_seconds, None, -1)[0]
        return self._run(prepared, version, request, tier, load_seconds, None, -1)[0]

    def plain_handler(self, prepared: PreparedModule, version: FunctionVersion) -> bool:
        """Whether a call can take `_run_plain`: the C path, a handler, no WASI (so no
        Python host function and no CallState: wasmhost.log is the C one)."""
        return self.fast is not None and version.abi == "handler" and not prepared.uses_wasi

    def run_encoded(self, prepared: PreparedModule, version: FunctionVersion, fields: bytes,
                    fuel_cap: int, host_call_cap: int) -> Invocation | None:
        """`run_bounded` for a request already encoded by `handler.encode_fields` (the
        HTTP route's inline attempt), on `plain_handler` modules only."""
        assert self.plain_handler(prepared, version)
        result, over = self._run_plain(prepared, version, fields, "memory", 0.0, fuel_cap, host_call_cap)
        return None if over else result

    def run_bounded(self, prepared: PreparedModule, version: FunctionVersion, request: Request,
                    fuel_cap: int, host_call_cap: int) -> Invocation | None:
        """Like `run`, within a small budget of fuel and host calls; None when the
        budget ran out before the function's own limits did (the caller then runs it
        again with `run`: a guest has no effects outside its fresh instance)."""
        if self.plain_handler(prepared, version):
            result, over = self._run_plain(prepared, version, request, "memory", 0.0, fuel_cap, host_call_cap)
        else:
            result, over = self._run(prepared, version, request, "memory", 0.0, fuel_cap, host_call_cap)
        return None if over else result

    def _run_plain(self, prepared: PreparedModule, version: FunctionVersion, request: Request | bytes,
                   tier: Tier, load_seconds: float, fuel_cap: int | None,
                   host_call_cap: int) -> tuple[Invocation, bool]:
        """`_run` for `plain_handler` modules, with less Python per call: no CallState or
        STATES entry (no Python host function can run). `request` may come encoded by
        `handler.encode_fields` already."""
        settings, limits = self.settings, version.limits
        fuel = limits.fuel if fuel_cap is None else min(fuel_cap, limits.fuel)
        result = Invocation(version.name, version.version, tier, Timings(load=load_seconds))
        fast = self.fast
        assert fast is not None
        log_bytes, truncated, over_budget = b"", 0, 0
        try:
            if type(request) is bytes:
                body = request + handler.packed_config(version.config)
            else:
                body = handler.encode_request(request, version.config)  # type: ignore[arg-type]
            out = fast.call_handler(self.wasm.ptr, prepared.pre_ptr, next(_keys), fuel, limits.memory_mb * MIB,
                                    self.wasm.deadline_ticks(limits.timeout_ms), 0, prepared.has_initialize,
                                    body, settings.max_response_bytes, host_call_cap, settings.max_log_bytes)
            log_bytes, truncated, over_budget = out[7:]
            self._fast_outcome(out, version, result, "", False, False)
        except WasmhostError as exc:
            result.error = exc
        except Exception as exc:  # a bug of ours: keep the host alive, hide details from the client
            log.exception("internal error running %s@%s", version.name, version.version)
            result.error = InternalError(f"internal error while running the function ({type(exc).__name__})")
        if result.error is not None:
            result.response = None
        over = bool(over_budget) or (fuel < limits.fuel and isinstance(result.error, FuelExhausted))
        if log_bytes:
            result.logs = log_bytes.decode("utf-8", "replace").splitlines()
        result.logs_truncated = bool(truncated)
        t = result.timings
        t.total = t.load + t.instantiate + t.run
        return result, over

    def _run(self, prepared: PreparedModule, version: FunctionVersion, request: Request, tier: Tier,
             load_seconds: float, fuel_cap: int | None, host_call_cap: int) -> tuple[Invocation, bool]:
        settings = self.settings
        result = Invocation(version.name, version.version, tier, Timings(load=load_seconds))
        state = CallState(settings.max_log_bytes, settings.max_response_bytes,
                          capture_stdout=version.abi == "wagi",
                          deadline=time.monotonic() + version.limits.timeout_ms / 1000,
                          host_calls_left=host_call_cap)
        fuel = version.limits.fuel if fuel_cap is None else min(fuel_cap, version.limits.fuel)
        key = next(_keys)
        STATES[key] = state
        try:
            make_config = wasi_config if self.fast is None else self.fast.wasi_config
            if version.abi == "wagi":
                argv, env, export = wagi.wasi_inputs(request, version)
                wasi = make_config(argv, env, request.body)
            else:
                export = ""
                wasi = make_config([version.name.encode()], [], b"") if prepared.uses_wasi else 0
            if self.fast is not None:
                self._run_fast(prepared, version, request, state, key, wasi, export, result, fuel)
            else:
                self._run_ctypes(prepared, version, request, state, key, wasi, export, result, fuel)
        except WasmhostError as exc:
            result.error = exc
        except Exception as exc:  # a bug of ours: keep the host alive, hide details from the client
            log.exception("internal error running %s@%s", version.name, version.version)
            result.error = InternalError(f"internal error while running the function ({type(exc).__name__})")
        finally:
            STATES.pop(key, None)
        if result.error is not None:
            result.response = None
        over = state.over_budget or (fuel < version.limits.fuel and isinstance(result.error, FuelExhausted))
        result.logs = state.log_lines()
        result.logs_truncated = state.log_truncated
        t = result.timings
        t.total = t.load + t.instantiate + t.run
        return result, over

    # ---- the two ways to do the wasmtime part ------------------------------------------

    def _run_fast(self, prepared: PreparedModule, version: FunctionVersion, request: Request,
                  state: CallState, key: int, wasi: int, export: str, result: Invocation, fuel: int) -> None:
        limits, fast = version.limits, self.fast
        assert fast is not None
        memory_cap = limits.memory_mb * MIB
        ticks = self.wasm.deadline_ticks(limits.timeout_ms)
        if version.abi == "wagi":
            out = fast.call_export(self.wasm.ptr, prepared.pre_ptr, key, fuel, memory_cap, ticks,
                                   wasi, export.encode(), True, state.max_stdout_bytes, state.max_log_bytes)
            self._take_stdio(state, out)
        else:
            body = handler.encode_request(request, version.config)
            out = fast.call_handler(self.wasm.ptr, prepared.pre_ptr, key, fuel, memory_cap, ticks,
                                    wasi, prepared.has_initialize, body, self.settings.max_response_bytes,
                                    state.host_calls_left, self.settings.max_log_bytes)
            # What the C wasmhost.log and fd_write wrote.
            log, truncated, over_budget = out[7:]
            if log:
                state.add_log(log)
            state.log_truncated = state.log_truncated or bool(truncated)
            state.over_budget = state.over_budget or bool(over_budget)
        self._fast_outcome(out, version, result, export, state.stdout_overflow, state.slept_past_deadline,
                           state)

    @staticmethod
    def _take_stdio(state: CallState, out: tuple) -> None:
        """What the C fd_write and wasmhost.log of a `call_export` captured, into `state`
        (where the Python poll_oneoff also writes)."""
        stdout, overflow, log, truncated = out[7:]
        state.stdout = stdout
        state.stdout_overflow = state.stdout_overflow or bool(overflow)
        if log:
            state.add_log(log)
        state.log_truncated = state.log_truncated or bool(truncated)

    def _fast_outcome(self, out: tuple, version: FunctionVersion, result: Invocation, export: str,
                      stdout_overflow: bool, slept_past_deadline: bool, state: CallState | None = None) -> None:
        """Fill `result` from a `_fastpath` call's outcome (`state`: the WAGI output)."""
        outcome, a, b, c, result.fuel_used, inst_ns, run_ns = out[:7]
        result.timings.instantiate = inst_ns / 1e9
        result.timings.run = run_ns / 1e9
        if outcome == OK:
            if version.abi == "wagi":
                assert state is not None
                result.response = wagi.output_response(state, self.settings.max_response_bytes)
            else:
                result.response = handler.decode_response(a)
        elif outcome in (FAULT_INSTANTIATE, FAULT_RUN):
            fault = exit_fault(fault_from(a, b, "instantiate" if outcome == FAULT_INSTANTIATE else "run"), state)
            if version.abi == "wagi" and fault.exit_code == 0 and fault.during == "run":
                assert state is not None
                result.response = wagi.output_response(state, self.settings.max_response_bytes)
            else:
                result.error = self.classify(fault, stdout_overflow, slept_past_deadline, version, c)
        elif outcome == ALLOC_OUT_OF_BOUNDS:
            raise BadResponse(f"wasmhost_alloc returned {a}, outside linear memory ({b} bytes)")
        elif outcome == RESPONSE_TOO_LARGE:
            raise self._too_large(a)
        elif outcome == RESPONSE_OUT_OF_BOUNDS:
            raise BadResponse(f"response pointer {a} + length {b} is outside linear memory ({c} bytes)")
        elif outcome == MISSING_EXPORT:
            what = export if a == 3 else MISSING_NAMES[a]
            raise BadResponse(f"the module has no usable export {what!r} (of the type its interface requires)")
        else:  # pragma: no cover - _fastpath returns only the outcomes above
            raise InternalError(f"unknown fast-path outcome {outcome}")

    def _run_ctypes(self, prepared: PreparedModule, version: FunctionVersion, request: Request,
                    state: CallState, key: int, wasi: int, export: str, result: Invocation, fuel: int) -> None:
        limits, timings = version.limits, result.timings
        t0 = time.perf_counter()
        native = NativeCall(self.wasm.ptr, key, fuel, limits.memory_mb * MIB,
                            self.wasm.deadline_ticks(limits.timeout_ms))
        phase = "instantiate"
        try:
            if wasi:
                native.set_wasi(wasi)
            native.instantiate(prepared.pre_ptr)
            t1 = time.perf_counter()
            timings.instantiate = t1 - t0
            phase = "run"
            if version.abi == "wagi":
                try:
                    wagi.run_export(native, export, state)
                finally:
                    timings.run = time.perf_counter() - t1
                result.response = wagi.output_response(state, self.settings.max_response_bytes)
            else:
                if prepared.has_initialize:
                    wagi.run_export(native, "_initialize", state)
                body = handler.encode_request(request, version.config)
                result.response = handler.call(native, body, self.settings.max_response_bytes)
                timings.run = time.perf_counter() - t1
        except GuestFault as raised:
            fault = exit_fault(raised, state)
            if phase == "instantiate":
                timings.instantiate = time.perf_counter() - t0
            elif not timings.run:
                timings.run = time.perf_counter() - t0 - timings.instantiate
            # Only an instantiated store may be asked for exports: wasmtime aborts the
            # process when given an instance handle from another store.
            memory_size = self._memory_size(native) if phase == "run" else None
            result.error = self.classify(fault, state.stdout_overflow, state.slept_past_deadline, version,
                                         memory_size)
        finally:
            result.fuel_used = native.fuel_used()
            native.close()

    # ---- classification -----------------------------------------------------------------

    def _too_large(self, size: int) -> TooLarge:
        limit = self.settings.max_response_bytes
        return TooLarge(f"response of {size} bytes exceeds the limit of {limit} bytes", limit=limit)

    def classify(self, fault: GuestFault, stdout_overflow: bool, slept_past_deadline: bool,
                 version: FunctionVersion, memory_size: int | None) -> WasmhostError:
        """Name what went wrong, from the trap code, the exit status and what the host
        functions saw (output past its cap, a sleep cut at the deadline)."""
        limits = version.limits
        if stdout_overflow:
            limit = self.settings.max_response_bytes
            return TooLarge(f"output exceeds the response limit of {limit} bytes", limit=limit)
        code = fault.trap_code
        if slept_past_deadline:
            code = "interrupt"
        if code == "out_of_fuel":
            return FuelExhausted(f"the function used all of its {limits.fuel} units of fuel", fuel=limits.fuel)
        if code == "interrupt":
            return Timeout(f"the function ran past its {limits.timeout_ms} ms deadline", timeout_ms=limits.timeout_ms)
        if fault.exit_code is not None:
            if fault.during == "instantiate" or version.abi == "handler":
                return BadResponse(f"the module exited with status {fault.exit_code} before answering",
                                   exit_code=fault.exit_code)
            return NonZeroExit(f"the program exited with status {fault.exit_code}", exit_code=fault.exit_code)
        if fault.during == "instantiate":
            text = fault.message
            if "memory minimum size" in text or "exceeds memory limits" in text:
                return MemoryLimit(f"the module's initial memory exceeds its {limits.memory_mb} MiB cap "
                                   f"({text})", memory_mb=limits.memory_mb)
            if "concurrent limit" in text:
                return Overloaded("no free instance slot in the pool; retry shortly", retry_after=1)
            if code is None:
                return Trap(f"instantiation failed: {text}", trap_code=None)
        cap = limits.memory_mb * MIB
        if code is not None and memory_size is not None and memory_size >= cap - 65536:
            return MemoryLimit(f"the function reached its {limits.memory_mb} MiB memory cap and then "
                               f"trapped ({fault.message})", memory_mb=limits.memory_mb, trap_code=code)
        return Trap(fault.message, trap_code=code)

    @staticmethod
    def _memory_size(native: NativeCall) -> int | None:
        try:
            return native.memory_span(native.export(b"memory", EXTERN_MEMORY))[1]
        except GuestFault:
            return None

    # ---- deploy-time helper -------------------------------------------------------------

    def collect_routes(self, prepared: PreparedModule, version: FunctionVersion) -> tuple[Route, ...]:
        """Run a WAGI module's `_routes` export once (at deploy) and parse what it prints."""
        limits = version.limits
        state = CallState(self.settings.max_log_bytes, 256 * 1024, capture_stdout=True,
                          deadline=time.monotonic() + limits.timeout_ms / 1000)
        key = next(_keys)
        if self.fast is not None:  # its fd_write is the C one, which needs the C path's store data
            return self._collect_routes_fast(prepared, version, state, key)
        STATES[key] = state
        native = NativeCall(self.wasm.ptr, key, limits.fuel, limits.memory_mb * MIB,
                            self.wasm.deadline_ticks(limits.timeout_ms))
        try:
            native.set_wasi(wasi_config([b"_routes"], [], b""))
            native.instantiate(prepared.pre_ptr)
            wagi.run_export(native, "_routes", state)
        except GuestFault as fault:
            raise InvalidModule(f"the module's _routes export failed: {exit_fault(fault, state).message}") from None
        finally:
            STATES.pop(key, None)
            native.close()
        return wagi.routes_from_output(state, frozenset(exp.name for exp in prepared.module.exports))

    def _collect_routes_fast(self, prepared: PreparedModule, version: FunctionVersion, state: CallState,
                             key: int) -> tuple[Route, ...]:
        """`collect_routes` on the C path, with the same outcomes and messages."""
        limits, fast = version.limits, self.fast
        assert fast is not None
        STATES[key] = state
        try:
            out = fast.call_export(self.wasm.ptr, prepared.pre_ptr, key, limits.fuel, limits.memory_mb * MIB,
                                   self.wasm.deadline_ticks(limits.timeout_ms), fast.wasi_config([b"_routes"], [], b""),
                                   b"_routes", True, state.max_stdout_bytes, state.max_log_bytes)
        finally:
            STATES.pop(key, None)
        self._take_stdio(state, out)
        outcome, a, b = out[:3]
        if outcome in (FAULT_INSTANTIATE, FAULT_RUN):
            fault = exit_fault(fault_from(a, b, "instantiate" if outcome == FAULT_INSTANTIATE else "run"), state)
            if fault.exit_code != 0 or fault.during == "instantiate":
                raise InvalidModule(f"the module's _routes export failed: {fault.message}")
        elif outcome == MISSING_EXPORT:  # as wagi.run_export words it
            funcs = {exp.name for exp in prepared.module.exports if isinstance(exp.type, FuncType)}
            why = "is not a () -> () function" if "_routes" in funcs else None
            message = f"export '_routes' {why}" if why else "the module has no exported function '_routes'"
            raise BadResponse(f"the module has no usable export '_routes': {message}")
        elif outcome != OK:  # pragma: no cover - call_export returns only the outcomes above
            raise InternalError(f"unknown fast-path outcome {outcome}")
        return wagi.routes_from_output(state, frozenset(exp.name for exp in prepared.module.exports))
