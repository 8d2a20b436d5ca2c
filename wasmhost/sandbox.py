"""One invocation: a fresh Store with fuel, memory cap and deadline; one call through the
guest interface's executor; the outcome classified; everything discarded.

Nothing survives a call: the Store (and with it the instance and its memory) is deleted
before the call returns, whatever happened. The sandbox owns the two choices a call depends
on, each made once: the call path (C or ctypes) per process, from `Settings.fastpath`, and
the executor per guest interface (`abi/handler.py`, `abi/wagi.py`), looked up by the version's
interface in one place. What every interface shares is here: the host functions' per-call
state, limits and budgets, and the classification of faults.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from typing import Any, Mapping, Sequence

import wasmtime

from . import callpath
from .abi.executor import Executor
from .abi.handler import HandlerExecutor
from .abi.wagi import ROUTES_OUTPUT_BYTES, WagiExecutor, WagiInputs
from .cache import PreparedModule
from .engine import WasmEngine
from .errors import FuelExhausted, InternalError, MemoryLimit, Overloaded, Timeout, TooLarge, Trap, WasmhostError
from .hostcalls import STATES, CallState, Linkers, build_linkers, exit_fault
from .models import FunctionVersion, Invocation, Request, Route, Tier, Timings
from .native import GuestFault, Outcome, RawCall, fault_from
from .settings import MIB, Settings

log = logging.getLogger("wasmhost.sandbox")

_keys = itertools.count(1)  # per-call keys for the host functions' state (never 0)
_FAULTS = (int(Outcome.FAULT_INSTANTIATE), int(Outcome.FAULT_RUN))

_linkers: dict[tuple[int, str], Linkers] = {}
_linkers_lock = threading.Lock()


def linkers_for(wasm: WasmEngine, calls: callpath.CallPath) -> Linkers:
    """Linkers are per engine and call path, and store-independent: built once."""
    key = (id(wasm), calls.name)
    with _linkers_lock:
        linkers = _linkers.get(key)
        if linkers is None:
            linkers = _linkers[key] = build_linkers(wasm, calls.extension)
        return linkers


class Sandbox:
    def __init__(self, wasm: WasmEngine, settings: Settings) -> None:
        self.wasm = wasm
        self.settings = settings
        self.calls = callpath.choose(settings.fastpath)
        self.linkers = linkers_for(wasm, self.calls)
        self.handler = HandlerExecutor(self.calls, wasm, settings)
        self.wagi = WagiExecutor(self.calls, wasm, settings)
        self.executors: dict[str, Executor] = {"handler": self.handler, "wagi": self.wagi}

    @property
    def path(self) -> str:
        """"c" or "ctypes": how this process makes calls."""
        return self.calls.name

    def run(self, prepared: PreparedModule, version: FunctionVersion, request: Request,
            tier: Tier = "memory", load_seconds: float = 0.0) -> Invocation:
        """Run `request` through a fresh instance; never raises for guest faults."""
        executor = self.executors[version.abi]
        try:
            inputs = executor.inputs(request, version)
        except WasmhostError as exc:  # a request this interface cannot take: no guest runs
            result = Invocation(version.name, version.version, tier, Timings(load=load_seconds, total=load_seconds))
            result.error = exc
            return result
        return self._call(executor, prepared, version, inputs, tier, load_seconds, None, -1)[0]

    def run_inline(self, prepared: PreparedModule, version: FunctionVersion, method: str, path: str,
                   query: bytes, headers: Sequence[tuple[bytes, bytes]], body: bytes, config: Mapping[str, str],
                   fuel_cap: int, host_call_cap: int) -> Invocation | None:
        """A handler call from the HTTP server's own fields (no `Request` built), within a budget
        of fuel and host calls; None when the budget ran out before the function's own limits
        did (the caller then runs it again with `run`: a guest has no effects outside its
        fresh instance)."""
        inputs = self.handler.inputs_from_fields(method, path, query, headers, body, config)
        result, over = self._call(self.handler, prepared, version, inputs, "memory", 0.0, fuel_cap, host_call_cap)
        return None if over else result

    def collect_routes(self, prepared: PreparedModule, version: FunctionVersion) -> tuple[Route, ...]:
        """Run a WAGI module's `_routes` export once (at deploy) and read what it prints."""
        key = next(_keys)
        state = CallState(self.settings.max_log_bytes, ROUTES_OUTPUT_BYTES, capture_stdout=True,
                          deadline=time.monotonic() + version.limits.timeout_ms / 1000)
        STATES[key] = state
        try:
            raw = self.wagi.call(prepared, version, WagiInputs([b"_routes"], [], b"", "_routes"), key,
                                 version.limits.fuel, -1, ROUTES_OUTPUT_BYTES)
        finally:
            STATES.pop(key, None)
        fault = self._fault(raw, state) if raw.outcome in _FAULTS else None
        exports = frozenset(exp.name for exp in prepared.module.exports)
        funcs = frozenset(exp.name for exp in prepared.module.exports if isinstance(exp.type, wasmtime.FuncType))
        return self.wagi.routes(raw, fault, exports, funcs)

    # ---- one call ---------------------------------------------------------------------

    def _call(self, executor: Executor, prepared: PreparedModule, version: FunctionVersion, inputs: Any,
              tier: Tier, load_seconds: float, fuel_cap: int | None, host_call_cap: int) -> tuple[Invocation, bool]:
        """One call and its classified outcome, and whether it ran out of an inline budget."""
        limits = version.limits
        fuel = limits.fuel if fuel_cap is None else min(fuel_cap, limits.fuel)
        result = Invocation(version.name, version.version, tier, Timings(load=load_seconds))
        key = next(_keys)
        # Python host functions need their state: all of them on the ctypes path, and WASI's
        # poll_oneoff and proc_exit on both. A WASI-free module on the C path needs none.
        state = None
        if self.calls.python_stdio or prepared.uses_wasi:
            settings = self.settings
            state = STATES[key] = CallState(settings.max_log_bytes, settings.max_response_bytes,
                                            capture_stdout=executor.captures_stdout,
                                            deadline=time.monotonic() + limits.timeout_ms / 1000,
                                            host_calls_left=host_call_cap)
        over = False
        try:
            raw = executor.call(prepared, version, inputs, key, fuel, host_call_cap)
            over = raw.over_budget
            result.fuel_used = raw.fuel_used
            t = result.timings
            t.instantiate, t.run = raw.instantiate_ns / 1e9, raw.run_ns / 1e9
            if raw.log:
                result.logs = raw.log.decode("utf-8", "replace").splitlines()
            result.logs_truncated = raw.log_truncated
            if raw.outcome in _FAULTS:
                fault = self._fault(raw, state)
                error = executor.exit_error(fault) if fault.exit_code is not None else \
                    self.classify(fault, raw, state, version)
                if error is None:  # an exit that is this interface's normal end
                    result.response = executor.response(raw, inputs)
                else:
                    result.error = error
            else:
                result.response = executor.response(raw, inputs)
        except WasmhostError as exc:
            result.error = exc
        except Exception as exc:  # a bug of ours: keep the host alive, hide details from the client
            log.exception("internal error running %s@%s", version.name, version.version)
            result.error = InternalError(f"internal error while running the function ({type(exc).__name__})")
        finally:
            if state is not None:
                STATES.pop(key, None)
        if result.error is not None:
            result.response = None
        over = over or (fuel < limits.fuel and isinstance(result.error, FuelExhausted))
        t = result.timings
        t.total = t.load + t.instantiate + t.run
        return result, over

    @staticmethod
    def _fault(raw: RawCall, state: CallState | None) -> GuestFault:
        """The fault of a call that did not end normally (taking over its error/trap pointers)."""
        during = "instantiate" if raw.outcome == Outcome.FAULT_INSTANTIATE else "run"
        return exit_fault(fault_from(raw.error, raw.trap, during), state)

    # ---- classification -----------------------------------------------------------------

    def classify(self, fault: GuestFault, raw: RawCall, state: CallState | None,
                 version: FunctionVersion) -> WasmhostError:
        """Name what went wrong, from the trap code and what the host functions saw (output
        past its cap, a sleep cut at the deadline). Exits are the executor's to name."""
        limits = version.limits
        if raw.stdout_overflow:
            limit = self.settings.max_response_bytes
            return TooLarge(f"output exceeds the response limit of {limit} bytes", limit=limit)
        code = fault.trap_code
        if state is not None and state.slept_past_deadline:
            code = "interrupt"
        if code == "out_of_fuel":
            return FuelExhausted(f"the function used all of its {limits.fuel} units of fuel", fuel=limits.fuel)
        if code == "interrupt":
            return Timeout(f"the function ran past its {limits.timeout_ms} ms deadline", timeout_ms=limits.timeout_ms)
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
        if code is not None and fault.during == "run" and raw.memory_size >= cap - 65536:
            return MemoryLimit(f"the function reached its {limits.memory_mb} MiB memory cap and then "
                               f"trapped ({fault.message})", memory_mb=limits.memory_mb, trap_code=code)
        return Trap(fault.message, trap_code=code)
