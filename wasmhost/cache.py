"""Compiled-module cache: memory LRU → disk artifacts (store/artifacts.py) → compile.

1. memory: ready-to-instantiate `InstancePre`s keyed by module digest, bounded
   by count and by artifact bytes.
2. disk: `artifacts/<engine-fingerprint>/ab/<digest>.cwasm`, mmapped by
   `Module.deserialize_file`. A checksum file written after it is checked first:
   wasmtime trusts artifact bytes, so a corrupt one must never reach it.
3. compile: from the stored blob, writing a fresh artifact.

Artifacts are only ever produced here, from modules that passed validation.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import wasmtime

from .compiler import ModuleCompiler
from .engine import WasmEngine
from .errors import InvalidModule
from .hostcalls import WASI_MODULE, Linkers
from .models import Tier
from .native import address
from .store.artifacts import ArtifactFiles

log = logging.getLogger("wasmhost.cache")
WASI_PREFIX = WASI_MODULE + "."


class ModuleHints(Protocol):
    """What the registry already knows of a module (a FunctionVersion fits)."""

    imports: tuple[str, ...]
    exports: tuple[str, ...]


@dataclass(eq=False, slots=True)
class PreparedModule:
    """A compiled module linked against our host functions, ready to instantiate."""

    digest: str
    module: wasmtime.Module
    pre: wasmtime.InstancePre
    uses_wasi: bool
    has_initialize: bool
    code_bytes: int
    pre_ptr: int = 0  # raw InstancePre pointer for the C-API fast path

    def __post_init__(self) -> None:
        self.pre_ptr = address(self.pre)


@dataclass(slots=True)
class CacheStats:
    memory: int = 0
    disk: int = 0
    compile: int = 0
    compile_seconds: float = 0.0
    corrupt_artifacts: int = 0
    evictions: int = 0


class CompiledCache:
    """Hands out PreparedModules and reports which tier served each one."""

    def __init__(self, wasm: WasmEngine, compiler: ModuleCompiler, linkers: Linkers, artifacts: ArtifactFiles,
                 read_blob: Callable[[str], bytes], max_modules: int, max_bytes: int) -> None:
        self.wasm = wasm
        self.compiler = compiler
        self.linkers = linkers
        self.artifacts = artifacts
        self.read_blob = read_blob
        self.max_modules = max_modules
        self.max_bytes = max_bytes
        self.stats = CacheStats()
        self._lru: OrderedDict[str, PreparedModule] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def artifact_path(self, digest: str) -> Path:
        return self.artifacts.path(digest)

    def get(self, digest: str, shape: ModuleHints | None = None) -> tuple[PreparedModule, Tier, float]:
        """The prepared module, the tier that served it and the seconds it took.

        `shape` (known from the registry) spares inspecting the module's imports
        and exports when it has to be loaded.
        """
        start = time.perf_counter()
        with self._lock:
            prepared = self._hit(digest)
            if prepared is not None:
                return prepared, "memory", time.perf_counter() - start
            loading = self._loading.setdefault(digest, threading.Lock())
        with loading:  # one thread loads a digest; the others wait and hit memory
            with self._lock:
                prepared = self._hit(digest)
                if prepared is not None:
                    return prepared, "memory", time.perf_counter() - start
            try:
                prepared, tier = self._load(digest, shape)
            finally:
                with self._lock:
                    self._loading.pop(digest, None)
        self._insert(prepared)
        with self._lock:
            setattr(self.stats, tier, getattr(self.stats, tier) + 1)
        return prepared, tier, time.perf_counter() - start

    def peek(self, digest: str) -> PreparedModule | None:
        """The module if it is in the memory tier, without ever loading it."""
        with self._lock:
            return self._hit(digest)

    def _hit(self, digest: str) -> PreparedModule | None:
        """A memory-tier lookup; the caller holds the lock."""
        prepared = self._lru.get(digest)
        if prepared is not None:
            self._lru.move_to_end(digest)
            self.stats.memory += 1
        return prepared

    def _load(self, digest: str, shape: ModuleHints | None) -> tuple[PreparedModule, Tier]:
        found = self.load_artifact(digest)
        if found is not None:
            module, size = found
            return self.prepare(digest, module, size, shape), "disk"
        wasm_bytes = self.read_blob(digest)
        module, seconds = self.compile_and_store(digest, wasm_bytes)
        return self.prepare(digest, module, len(wasm_bytes), shape), "compile"

    def load_artifact(self, digest: str) -> tuple[wasmtime.Module, int] | None:
        """The module from its verified artifact (and the artifact's size), or None when there
        is none or it is corrupt or incompatible (then it is removed, to be recompiled)."""
        rejected = self.artifacts.rejected
        try:
            found = self.artifacts.verified(digest)
            if found is None:
                return None
            path, size = found
            try:
                return wasmtime.Module.deserialize_file(self.wasm.engine, str(path)), size
            except FileNotFoundError:
                return None
            except wasmtime.WasmtimeError as exc:  # another engine's, or damaged in a way the sum missed
                self.artifacts.reject(digest, str(exc).splitlines()[0])
                return None
        finally:
            self.stats.corrupt_artifacts += self.artifacts.rejected - rejected

    def compile_and_store(self, digest: str, wasm_bytes: bytes) -> tuple[wasmtime.Module, float]:
        """Compile (validating) and write the artifact; returns the module and compile seconds."""
        start = time.perf_counter()
        module = self.compiler.compile(wasm_bytes)
        seconds = time.perf_counter() - start
        with self._lock:
            self.stats.compile_seconds += seconds
        self.store_artifact(digest, module)
        return module, seconds

    def store_artifact(self, digest: str, module: wasmtime.Module) -> bool:
        """Write the module's artifact; False when the disk would not take it (logged: the
        module still runs, only the next process's first call compiles)."""
        return self.artifacts.write(digest, module.serialize())

    def prepare(self, digest: str, module: wasmtime.Module, code_bytes: int,
                shape: ModuleHints | None = None) -> PreparedModule:
        if shape is not None:
            uses_wasi = any(name.startswith(WASI_PREFIX) for name in shape.imports)
            has_init = "_initialize" in shape.exports
        else:
            uses_wasi = any(imp.module == WASI_MODULE for imp in module.imports)
            has_init = any(exp.name == "_initialize" for exp in module.exports)
        linker = self.linkers.wasi if uses_wasi else self.linkers.without_wasi
        try:
            pre = linker.instantiate_pre(module)
        except wasmtime.WasmtimeError as exc:
            raise InvalidModule(f"cannot link module: {str(exc).splitlines()[0][:300]}") from None
        return PreparedModule(digest, module, pre, uses_wasi, has_init, code_bytes)

    def put(self, prepared: PreparedModule) -> None:
        self._insert(prepared)

    def _insert(self, prepared: PreparedModule) -> None:
        with self._lock:
            old = self._lru.pop(prepared.digest, None)
            if old is not None:
                self._bytes -= old.code_bytes
            self._lru[prepared.digest] = prepared
            self._bytes += prepared.code_bytes
            while len(self._lru) > 1 and (len(self._lru) > self.max_modules or self._bytes > self.max_bytes):
                _, evicted = self._lru.popitem(last=False)
                self._bytes -= evicted.code_bytes
                self.stats.evictions += 1

    def evict(self, digest: str) -> None:
        with self._lock:
            old = self._lru.pop(digest, None)
            if old is not None:
                self._bytes -= old.code_bytes

    def clear_memory(self) -> None:
        with self._lock:
            self._lru.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._lru)

    def memory_bytes(self) -> int:
        return self._bytes
