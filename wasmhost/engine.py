"""The process's wasmtime Engine: fuel, epochs, pooling allocator, fingerprint.

One Engine per process and configuration, shared by every thread.
Epoch interruption gives wall-clock deadlines: a daemon thread advances the
epoch every `epoch_tick_ms`, and each Store gets a deadline in ticks.

The pooling allocator is set through wasmtime's C API because wasmtime-py's
`Config` has no setter for it; that is a private API, so the wasmtime version is
pinned and any failure falls back to the default allocator with a log line.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import mmap
import os
import platform
import threading
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import wasmtime
from wasmtime import _bindings as capi

from .settings import MIB, Settings

log = logging.getLogger("wasmhost.engine")

# Elements of the one table an instance may have in a pooling slot (wasmtime's default,
# set explicitly so that the deploy check in module_shape.py cannot drift from it).
POOL_TABLE_ELEMENTS = 20_000

WASMTIME_VERSION = metadata.version("wasmtime")


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Every Config setting we make. All of it enters the fingerprint, because
    wasmtime silently accepts artifacts compiled under some other settings
    (opt level, NaN canonicalisation) and would run the old code."""

    max_wasm_stack: int
    pooling: bool
    pool_instances: int
    max_memory_bytes: int
    opt_level: str = "speed"
    nan_canonicalization: bool = False
    wasm_threads: bool = False
    epoch_tick_ms: int = 10
    keep_resident_bytes: int = 64 * 1024

    @classmethod
    def from_settings(cls, settings: Settings) -> "EngineConfig":
        return cls(
            max_wasm_stack=settings.max_wasm_stack,
            pooling=settings.pooling,
            pool_instances=settings.pool_size(),
            max_memory_bytes=settings.max_memory_mb * MIB,
            epoch_tick_ms=settings.epoch_tick_ms,
            keep_resident_bytes=settings.pool_keep_resident_bytes,
        )

    def codegen_settings(self, pooling_active: bool) -> dict[str, Any]:
        """The settings that can change generated code or artifact layout."""
        return {
            "wasmtime": WASMTIME_VERSION,
            "machine": platform.machine(),
            "system": platform.system(),
            "consume_fuel": True,
            "epoch_interruption": True,
            "max_wasm_stack": self.max_wasm_stack,
            "opt_level": self.opt_level,
            "nan_canonicalization": self.nan_canonicalization,
            "wasm_threads": self.wasm_threads,
            "pooling": pooling_active,
            "max_memory_bytes": self.max_memory_bytes if pooling_active else None,
        }


@dataclass(eq=False)
class WasmEngine:
    """A configured wasmtime Engine plus its epoch ticker."""

    engine: wasmtime.Engine
    config: EngineConfig
    pooling: bool
    fingerprint: str
    _stop: threading.Event = field(default_factory=threading.Event)
    _ticker: threading.Thread | None = None
    _native_ticker: Any = None  # a wasmhost._ticker capsule
    ptr: int = 0  # raw Engine pointer for the C-API fast path

    def __post_init__(self) -> None:
        self.ptr = ctypes.cast(self.engine.ptr(), ctypes.c_void_p).value or 0

    def start_ticker(self) -> None:
        """Tick from a native thread when wasmhost._ticker is built: a Python
        thread needs the GIL for every tick, so deadlines would stretch with
        the event loop's load. The Python thread is the fallback."""
        if self._ticker is not None or self._native_ticker is not None:
            return
        self._native_ticker = _start_native_ticker(self.ptr, self.config.epoch_tick_ms)
        if self._native_ticker is not None:
            return
        interval = self.config.epoch_tick_ms / 1000.0
        engine, stop = self.engine, self._stop

        def tick() -> None:
            while not stop.wait(interval):
                engine.increment_epoch()

        self._ticker = threading.Thread(target=tick, name="wasmhost-epoch", daemon=True)
        self._ticker.start()

    @property
    def ticker_kind(self) -> str:
        """"native", "python" or "stopped": which thread increments the epoch."""
        if self._native_ticker is not None and _ticker_module is not None and _ticker_module.alive(self._native_ticker):
            return "native"
        if self._ticker is not None and self._ticker.is_alive():
            return "python"
        return "stopped"

    @property
    def ticking(self) -> bool:
        """Whether the epoch ticker runs (without it no deadline would ever fire)."""
        return self.ticker_kind != "stopped"

    def deadline_ticks(self, timeout_ms: int) -> int:
        """Epoch ticks for a timeout: rounded up, plus one because the first
        tick can come at any moment after the Store is made."""
        return -(-timeout_ms // self.config.epoch_tick_ms) + 1

    def close(self) -> None:
        if self._native_ticker is not None and _ticker_module is not None:
            _ticker_module.stop(self._native_ticker)
            self._native_ticker = None
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=1.0)
            self._ticker = None

    def describe(self) -> dict[str, Any]:
        return {
            "wasmtime": WASMTIME_VERSION,
            "fingerprint": self.fingerprint,
            "allocator": "pooling" if self.pooling else "on-demand",
            "pool_instances": self.config.pool_instances if self.pooling else None,
            "max_wasm_stack": self.config.max_wasm_stack,
            "epoch_tick_ms": self.config.epoch_tick_ms,
            "epoch_ticker": self.ticker_kind,
            "opt_level": self.config.opt_level,
        }


def base_config(cfg: EngineConfig) -> wasmtime.Config:
    """Everything but the allocator: compiler children build their Engine from this alone."""
    config = wasmtime.Config()
    config.consume_fuel = True
    config.epoch_interruption = True
    config.max_wasm_stack = cfg.max_wasm_stack
    config.cranelift_opt_level = cfg.opt_level
    config.cranelift_nan_canonicalization = cfg.nan_canonicalization
    config.wasm_threads = cfg.wasm_threads
    config.parallel_compilation = True
    return config


def _set_pooling(config: wasmtime.Config, cfg: EngineConfig) -> None:
    pool = capi.wasmtime_pooling_allocation_config_new()
    try:
        n = cfg.pool_instances
        capi.wasmtime_pooling_allocation_config_total_core_instances_set(pool, n)
        capi.wasmtime_pooling_allocation_config_total_memories_set(pool, n)
        capi.wasmtime_pooling_allocation_config_total_tables_set(pool, n)
        capi.wasmtime_pooling_allocation_config_total_stacks_set(pool, n)
        capi.wasmtime_pooling_allocation_config_max_memory_size_set(pool, cfg.max_memory_bytes)
        capi.wasmtime_pooling_allocation_config_table_elements_set(pool, POOL_TABLE_ELEMENTS)
        # Reset the first bytes of a freed slot with memset instead of madvise: a
        # fresh instance then takes no page faults on its first pages (bench/design-figures.md: keep-resident).
        capi.wasmtime_pooling_allocation_config_linear_memory_keep_resident_set(pool, cfg.keep_resident_bytes)
        capi.wasmtime_pooling_allocation_config_table_keep_resident_set(pool, cfg.keep_resident_bytes)
        capi.wasmtime_pooling_allocation_strategy_set(config.ptr(), pool)
    finally:
        capi.wasmtime_pooling_allocation_config_delete(pool)


GIB = 1024 * MIB
DEFAULT_MEMORY_RESERVATION = 4 * GIB  # wasmtime's default on 64-bit hosts
GUARD_ALLOWANCE = 64 * MIB


def pool_reservation_bytes(cfg: EngineConfig) -> int:
    """Virtual address space the pooling allocator will reserve (an upper estimate)."""
    per_slot = max(DEFAULT_MEMORY_RESERVATION, cfg.max_memory_bytes) + GUARD_ALLOWANCE
    return cfg.pool_instances * per_slot + GIB  # + tables and stacks


def can_reserve(nbytes: int) -> bool:
    """Whether `nbytes` of address space can be reserved right now.

    wasmtime's C API aborts the process (a Rust panic in `Engine()`) when the
    pool's mapping fails, so we must find out before asking it.
    """
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_NORESERVE", 0x4000)
    try:
        region = mmap.mmap(-1, nbytes, flags=flags, prot=0)  # PROT_NONE: address space only
    except (OSError, OverflowError, ValueError):
        return False
    region.close()
    return True


def fingerprint_of(settings: dict[str, Any]) -> str:
    blob = json.dumps(settings, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def create_engine(cfg: EngineConfig) -> WasmEngine:
    """Build the Engine; if the pooling allocator cannot be created (e.g. a
    virtual-memory ulimit), fall back to the default allocator and say so."""
    engine: wasmtime.Engine | None = None
    pooling = False
    if cfg.pooling and not can_reserve(pool_reservation_bytes(cfg)):
        log.warning("pooling allocator needs %d GiB of address space, which this process cannot reserve; "
                    "using the default allocator", pool_reservation_bytes(cfg) // GIB)
    elif cfg.pooling:
        try:
            config = base_config(cfg)
            _set_pooling(config, cfg)
            engine = wasmtime.Engine(config)
            pooling = True
        except (wasmtime.WasmtimeError, AttributeError, OSError) as exc:
            log.warning("pooling allocator unavailable (%s); using the default allocator", exc)
    if engine is None:
        engine = wasmtime.Engine(base_config(cfg))
    wasm_engine = WasmEngine(engine, cfg, pooling, fingerprint_of(cfg.codegen_settings(pooling)))
    wasm_engine.start_ticker()
    return wasm_engine


def _load_ticker_module() -> Any:
    try:
        from . import _ticker  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _ticker


_ticker_module = _load_ticker_module()


def _start_native_ticker(engine_ptr: int, tick_ms: int) -> Any:
    """A native ticker thread for this Engine, or None without the extension."""
    if _ticker_module is None or not engine_ptr:
        return None
    address = [ctypes.cast(getattr(capi.dll, name), ctypes.c_void_p).value or 0 for name in
               ("wasmtime_engine_clone", "wasmtime_engine_increment_epoch", "wasm_engine_delete")]
    try:
        return _ticker_module.start(engine_ptr, *address, tick_ms * 1_000_000)
    except (OSError, ValueError) as exc:
        log.warning("native epoch ticker unavailable (%s); ticking from a Python thread", exc)
        return None


def _restart_tickers_after_fork() -> None:
    """A forked child inherits no threads: without this, its deadlines would never fire."""
    for wasm_engine in list(_shared.values()):
        wasm_engine._native_ticker = None  # its capsule knows it belongs to the parent
        wasm_engine._ticker = None
        wasm_engine._stop = threading.Event()
        wasm_engine.start_ticker()


os.register_at_fork(after_in_child=_restart_tickers_after_fork)

_shared: dict[EngineConfig, WasmEngine] = {}
_shared_lock = threading.Lock()


def shared_engine(settings: Settings) -> WasmEngine:
    """The process's Engine for these settings (one per distinct configuration)."""
    cfg = EngineConfig.from_settings(settings)
    with _shared_lock:
        engine = _shared.get(cfg)
        if engine is None:
            engine = _shared[cfg] = create_engine(cfg)
        return engine
