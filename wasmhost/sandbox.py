"""One invocation: fresh Store with fuel, memory cap and deadline; instantiate;
run through the guest interface; classify the outcome; discard everything.

Nothing survives a call: the Store (and with it the instance and its memory)
is deleted in `finally`, whatever happened.
"""

from __future__ import annotations

import logging
import time

from .abi import handler, wagi
from .abi.hostcalls import STATES, CallState
from .cache import PreparedModule
from .engine import WasmEngine
from .errors import (BadResponse, FuelExhausted, GuestError, InternalError, InvalidModule, MemoryLimit,
                     NonZeroExit, Overloaded, Timeout, TooLarge, Trap, WasmhostError)
from .models import FunctionVersion, Invocation, Request, Route, Tier, Timings
from .native import EXTERN_MEMORY, GuestFault, NativeCall
from .settings import MIB, Settings

log = logging.getLogger("wasmhost.sandbox")


class Sandbox:
    def __init__(self, wasm: WasmEngine, settings: Settings) -> None:
        self.wasm = wasm
        self.settings = settings

    def run(self, prepared: PreparedModule, version: FunctionVersion, request: Request,
            tier: Tier = "memory", load_seconds: float = 0.0) -> Invocation:
        """Run `request` through a fresh instance; never raises for guest faults."""
        settings, limits = self.settings, version.limits
        timings = Timings(load=load_seconds)
        result = Invocation(version.name, version.version, tier, timings)
        state = CallState(settings.max_log_bytes, settings.max_response_bytes,
                          capture_stdout=version.abi == "wagi")
        memory_cap = limits.memory_mb * MIB
        t0 = time.perf_counter()
        native = NativeCall(self.wasm.ptr, limits.fuel, memory_cap, self.wasm.deadline_ticks(limits.timeout_ms))
        STATES[native.key] = state
        phase = "instantiate"
        try:
            if version.abi == "wagi":
                argv, env, export = wagi.wasi_inputs(request, version)
                native.set_wasi(argv, env, request.body)
            elif prepared.uses_wasi:
                native.set_wasi([version.name.encode()], [], b"")
            native.instantiate(prepared.pre_ptr)
            t1 = time.perf_counter()
            timings.instantiate = t1 - t0
            phase = "run"
            if version.abi == "wagi":
                wagi.run_export(native, export)
                result.response = wagi.output_response(state, settings.max_response_bytes)
            else:
                if prepared.has_initialize:
                    wagi.run_export(native, "_initialize")
                body = handler.encode_request(request, version.config)
                result.response = handler.call(native, body, settings.max_response_bytes)
            timings.run = time.perf_counter() - t1
        except GuestFault as fault:
            result.error = self._classify(fault, native, state, version, memory_cap)
        except WasmhostError as exc:
            result.error = exc
        except Exception as exc:  # a bug of ours: keep the host alive, hide details from the client
            log.exception("internal error running %s@%s", version.name, version.version)
            result.error = InternalError(f"internal error while running the function ({type(exc).__name__})")
        finally:
            if result.error is not None:
                now = time.perf_counter()
                if phase == "instantiate":
                    timings.instantiate = now - t0
                else:
                    timings.run = now - t0 - timings.instantiate
            result.fuel_used = native.fuel_used()
            STATES.pop(native.key, None)
            native.close()
        result.logs = state.log_lines()
        result.logs_truncated = state.log_truncated
        timings.total = load_seconds + timings.instantiate + timings.run
        return result

    def _classify(self, fault: GuestFault, native: NativeCall, state: CallState,
                  version: FunctionVersion, memory_cap: int) -> GuestError | WasmhostError:
        limits = version.limits
        if state.stdout_overflow:
            return TooLarge(f"output exceeds the response limit of {self.settings.max_response_bytes} bytes",
                            limit=self.settings.max_response_bytes)
        code = fault.trap_code
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
        used = self._memory_size(native)
        if code is not None and used is not None and used >= memory_cap - 65536:
            return MemoryLimit(f"the function reached its {limits.memory_mb} MiB memory cap and then "
                               f"trapped ({fault.message})", memory_mb=limits.memory_mb, trap_code=code)
        return Trap(fault.message, trap_code=code)

    @staticmethod
    def _memory_size(native: NativeCall) -> int | None:
        try:
            return native.memory_span(native.export(b"memory", EXTERN_MEMORY))[1]
        except GuestFault:
            return None

    def collect_routes(self, prepared: PreparedModule, version: FunctionVersion) -> tuple[Route, ...]:
        """Run a WAGI module's `_routes` export once (at deploy) and parse what it prints."""
        limits = version.limits
        state = CallState(self.settings.max_log_bytes, 256 * 1024, capture_stdout=True)
        native = NativeCall(self.wasm.ptr, limits.fuel, limits.memory_mb * MIB,
                            self.wasm.deadline_ticks(limits.timeout_ms))
        STATES[native.key] = state
        try:
            native.set_wasi([b"_routes"], [], b"")
            native.instantiate(prepared.pre_ptr)
            wagi.run_export(native, "_routes")
        except GuestFault as fault:
            raise InvalidModule(f"the module's _routes export failed: {fault.message}") from None
        finally:
            STATES.pop(native.key, None)
            native.close()
        return wagi.routes_from_output(state, prepared_exports(prepared))


def prepared_exports(prepared: PreparedModule) -> frozenset[str]:
    return frozenset(exp.name for exp in prepared.module.exports)
