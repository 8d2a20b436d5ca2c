"""Compiled-module cache: memory LRU → disk artifacts → compile (DESIGN §5).

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
import mmap
import os
import re
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import wasmtime
import xxhash

from .abi.hostcalls import WASI_MODULE, Linkers
from .engine import POOL_TABLE_ELEMENTS, WasmEngine
from .native import address
from .errors import InvalidModule
from .models import Tier

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


# What one instance may have (the Store limiter in native.py and _fastpath.c: one memory,
# one table of at most STORE_TABLE_ELEMENTS; a pooling slot holds at most POOL_TABLE_ELEMENTS).
STORE_TABLE_ELEMENTS = 100_000
WASM_PAGE = 65536


def _leb(data: bytes, pos: int) -> tuple[int, int]:
    """An unsigned LEB128 at `pos`: (value, position after it). IndexError past the end."""
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("LEB128 too long")


def _limits(data: bytes, pos: int) -> tuple[int, int]:
    """(minimum, position after the limits): flags, min, optional max (any index width)."""
    flags = data[pos]
    minimum, pos = _leb(data, pos + 1)
    if flags & 1:
        _, pos = _leb(data, pos)
    if flags & 8:  # custom page size (proposal): one more LEB
        _, pos = _leb(data, pos)
    return minimum, pos


def _sleb(data: bytes, pos: int) -> tuple[int, int]:
    """A signed LEB128 at `pos`: (value, position after it)."""
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return (result - (1 << shift) if byte & 0x40 else result), pos
        if shift > 63:
            raise ValueError("LEB128 too long")


@dataclass(slots=True)
class DeclaredShape:
    """What a module's table (4), memory (5) and data (11) sections declare."""

    tables: int = 0  # tables defined
    table_min: int = 0  # the first table's initial elements
    memories: int = 0  # memories defined
    memory_pages: int = 0  # the first memory's initial pages
    data_end: int = 0  # the furthest end of an active data segment with a constant offset
    data_segment: int = -1  # which segment that is
    elem_end: int = 0  # the same for the (MVP-form) active element segments of table 0
    elem_segment: int = -1


def declared_shape(wasm_bytes: bytes) -> DeclaredShape | None:
    """Read the sizes a module declares from its sections, without compiling it; None
    when the bytes cannot be read that way (wasmtime then says what is wrong)."""
    shape = DeclaredShape()
    try:
        if wasm_bytes[:8] != b"\0asm\x01\x00\x00\x00":
            return None
        pos = 8
        while pos < len(wasm_bytes):
            section = wasm_bytes[pos]
            size, body = _leb(wasm_bytes, pos + 1)
            pos = body + size
            if section not in (4, 5, 9, 11):
                continue
            count, at = _leb(wasm_bytes, body)
            if section == 11:
                _data_ends(wasm_bytes, at, count, shape)
                continue
            if section == 9:
                _elem_ends(wasm_bytes, at, count, shape)
                continue
            if count == 0:
                continue
            if section == 4:
                shape.tables += count
                if wasm_bytes[at] == 0x40:  # table with an initialiser: 0x40 0x00 tabletype expr
                    at += 2
                if wasm_bytes[at] in (0x63, 0x64):  # (ref null? heaptype)
                    _, at = _leb(wasm_bytes, at + 1)
                else:
                    at += 1
                shape.table_min = _limits(wasm_bytes, at)[0]
            else:
                shape.memories += count
                shape.memory_pages = _limits(wasm_bytes, at)[0]
    except (IndexError, ValueError):
        return None
    return shape


def _data_ends(data: bytes, at: int, count: int, shape: DeclaredShape) -> None:
    """The furthest end of the active data segments of memory 0 whose offset is a plain
    `i32.const` (any other offset expression ends the scan: not worth guessing)."""
    for index in range(count):
        flags, at = _leb(data, at)
        if flags == 1:  # passive: no offset
            length, at = _leb(data, at)
            at += length
            continue
        if flags == 2:
            memory, at = _leb(data, at)
            if memory != 0:
                return
        elif flags != 0:
            return
        if data[at] != 0x41:  # i32.const
            return
        offset, at = _sleb(data, at + 1)
        if data[at] != 0x0B:  # end
            return
        length, at = _leb(data, at + 1)
        at += length
        end = (offset & 0xFFFFFFFF) + length
        if end > shape.data_end:
            shape.data_end, shape.data_segment = end, index


def _elem_ends(data: bytes, at: int, count: int, shape: DeclaredShape) -> None:
    """The furthest end of the active element segments in the MVP form (flags 0:
    `i32.const` offset into table 0, then function indices); any other form ends the scan."""
    for index in range(count):
        flags, at = _leb(data, at)
        if flags != 0 or data[at] != 0x41:
            return
        offset, at = _sleb(data, at + 1)
        if data[at] != 0x0B:
            return
        length, at = _leb(data, at + 1)
        for _ in range(length):
            _, at = _leb(data, at)
        end = (offset & 0xFFFFFFFF) + length
        if end > shape.elem_end:
            shape.elem_end, shape.elem_segment = end, index


def check_declared_shape(wasm: WasmEngine, wasm_bytes: bytes) -> None:
    """Refuse, before compiling, a module that no instance could ever be made of here
    (else every call would fail at instantiation, or wasmtime's pooling allocator would
    refuse it in its own words): more than one memory or table, an initial memory or
    table over the limits, a data or element segment outside the initial memory or table."""
    shape = declared_shape(wasm_bytes)
    if shape is None:
        return
    max_mib = wasm.config.max_memory_bytes // (1024 * 1024)
    if shape.memories > 1:
        raise InvalidModule(f"the module defines {shape.memories} memories; wasmhost allows one per module")
    if shape.tables > 1:
        raise InvalidModule(f"the module defines {shape.tables} tables; wasmhost allows one per module")
    pages = shape.memory_pages
    if pages * WASM_PAGE > wasm.config.max_memory_bytes:
        raise InvalidModule(f"the module's initial memory of {pages * WASM_PAGE // (1024 * 1024)} MiB "
                            f"({pages} pages) exceeds the server maximum of {max_mib} MiB", memory_mb=max_mib)
    limit = POOL_TABLE_ELEMENTS if wasm.pooling else STORE_TABLE_ELEMENTS
    if shape.table_min > limit:
        raise InvalidModule(f"the module's table has {shape.table_min} initial elements; this server allows at "
                            f"most {limit}", table_elements=limit)
    if shape.memories == 1 and shape.data_end > pages * WASM_PAGE:
        raise InvalidModule(f"the module's data segment {shape.data_segment} ends at byte {shape.data_end}, "
                            f"outside its initial memory of {pages * WASM_PAGE} bytes ({pages} pages): "
                            "every instantiation would fail")
    if shape.tables == 1 and shape.elem_end > shape.table_min:
        raise InvalidModule(f"the module's element segment {shape.elem_segment} ends at slot {shape.elem_end}, "
                            f"outside its initial table of {shape.table_min} slots: every instantiation would fail")


def compile_module(wasm: WasmEngine, wasm_bytes: bytes) -> wasmtime.Module:
    """Validate and compile; any failure is the module's fault."""
    check_declared_shape(wasm, wasm_bytes)
    try:
        return wasmtime.Module(wasm.engine, wasm_bytes)
    except wasmtime.WasmtimeError as exc:
        text = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        detail = " ".join(text[:3])[:300]
        if "instance allocation for this module requires" in detail:
            need = re.search(r"requires (\d+) bytes which exceeds the configured maximum of (\d+) bytes", detail)
            sizes = f" ({need.group(1)} bytes; the limit is {need.group(2)})" if need else ""
            raise InvalidModule("the module needs more per-instance state than this server allows"
                                f"{sizes}: it exports or references too many functions, globals or tables") from None
        if "pooling allocator" in detail:
            raise InvalidModule("the module's memory or tables are larger than this server allows "
                                f"(max memory {wasm.config.max_memory_bytes // (1024 * 1024)} MiB): {detail}") from None
        raise InvalidModule(f"not a valid WebAssembly module: {detail}") from None


def _checksum(path: Path) -> str:
    """Size and XXH3-128 of a file. XXH3 runs at ~30 GB/s (0.07 ms for 2 MB here);
    zlib.crc32 took 2 ms for the same file, most of a disk-tier cold start."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return "0:0"
        with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as view:
            return f"{size}:{xxhash.xxh3_128_hexdigest(view)}"
    finally:
        os.close(fd)


def _read_small(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 4096)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class CompiledCache:
    """Hands out PreparedModules and reports which tier served each one."""

    def __init__(self, wasm: WasmEngine, linkers: Linkers, data_dir: Path,
                 read_blob: Callable[[str], bytes], max_modules: int, max_bytes: int) -> None:
        self.wasm = wasm
        self.linkers = linkers
        self.artifacts_dir = Path(data_dir) / "artifacts" / wasm.fingerprint
        self.read_blob = read_blob
        self.max_modules = max_modules
        self.max_bytes = max_bytes
        self.stats = CacheStats()
        self._lru: OrderedDict[str, PreparedModule] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def artifact_path(self, digest: str) -> Path:
        return self.artifacts_dir / digest[:2] / f"{digest}.cwasm"

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
        """The module from its verified artifact (and the artifact's size), or None
        when there is none or it is corrupt or incompatible (then it is deleted)."""
        path = self.artifact_path(digest)
        sum_path = path.with_suffix(".sum")
        try:
            expected = _read_small(sum_path).decode("ascii", "replace").strip()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("artifact checksum for %s unreadable (%s); recompiling", digest[:12], exc)
            return None
        try:
            actual = _checksum(path)
            if actual != expected:
                raise ValueError("checksum mismatch")
            module = wasmtime.Module.deserialize_file(self.wasm.engine, str(path))
            return module, int(actual.partition(":")[0])
        except FileNotFoundError:
            return None
        except (ValueError, OSError, wasmtime.WasmtimeError) as exc:
            self.stats.corrupt_artifacts += 1
            log.warning("artifact for %s rejected (%s); recompiling", digest[:12], str(exc).splitlines()[0][:120])
            for stale in (sum_path, path):
                try:
                    stale.unlink()
                except OSError:
                    pass
            return None

    def compile_and_store(self, digest: str, wasm_bytes: bytes) -> tuple[wasmtime.Module, float]:
        """Compile (validating) and write the artifact; returns the module and compile seconds."""
        start = time.perf_counter()
        module = compile_module(self.wasm, wasm_bytes)
        seconds = time.perf_counter() - start
        with self._lock:
            self.stats.compile_seconds += seconds
        self.store_artifact(digest, module)
        return module, seconds

    def store_artifact(self, digest: str, module: wasmtime.Module) -> None:
        """Write the artifact, then its checksum (a crash in between leaves no sum: recompiled)."""
        path = self.artifact_path(digest)
        try:
            # A .sum left from an earlier artifact would describe other bytes: remove it first, so a
            # .sum that exists was always written after the artifact beside it.
            try:
                path.with_suffix(".sum").unlink()
            except FileNotFoundError:
                pass
            _write_atomic(path, module.serialize())
            _write_atomic(path.with_suffix(".sum"), _checksum(path).encode())
        except OSError as exc:
            # The module still runs; only the next process's cold start pays.
            log.error("could not write artifact for %s: %s", digest[:12], exc)

    def prepare(self, digest: str, module: wasmtime.Module, code_bytes: int,
                shape: ModuleHints | None = None) -> PreparedModule:
        if shape is not None:
            uses_wasi = any(name.startswith(WASI_PREFIX) for name in shape.imports)
            has_init = "_initialize" in shape.exports
        else:
            uses_wasi = any(imp.module == WASI_MODULE for imp in module.imports)
            has_init = any(exp.name == "_initialize" for exp in module.exports)
        linker = self.linkers.wasi if uses_wasi else self.linkers.plain
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
