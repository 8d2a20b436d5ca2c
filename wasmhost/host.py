"""Host: the whole product as a Python API, without HTTP.

deploy → validate, compile, inspect, store (blob, artifact, row) → warm cache.
invoke → resolve the active version → compiled module from the cheapest tier →
fresh sandboxed instance → Invocation.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import wasmtime

from .abi.detect import check_route_targets, inspect_module
from .cache import CompiledCache
from .compiler import CompileBudget, ModuleCompiler, compile_module
from .engine import shared_engine
from .errors import BadRequest, InvalidModule, NotFound, TooLarge, Unauthorized
from .models import Abi, Deployment, Expect, FunctionInfo, FunctionVersion, Invocation, Limits, Request, Route
from .store.artifacts import ArtifactFiles
from .store.layout import DataDir
from .inputs import (check_concurrency, check_config, check_entrypoint, check_private, check_version,
                     validate_name)
from .store.registry import Registry
from .sandbox import Sandbox
from .settings import MIB, Settings

log = logging.getLogger("wasmhost.host")

WASM_MAGIC = b"\0asm"
# An inline call may take about a tenth of a millisecond of wasm and a few host calls (each a GIL
# hop) before it is moved to a worker (bench/design-figures.md: inline-budget).
INLINE_FUEL = 1_000_000
INLINE_HOST_CALLS = 16
INLINE_BACKOFF_S = 1.0

# Answers an empty map (status 200); logs one line, and in the WASI variant prints one.
WARMUP_WAT = """(module (import "wasmhost" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1) (data (i32.const 16) "\\80ok")
  (func (export "wasmhost_alloc") (param i32) (result i32) i32.const 1024)
  (func (export "wasmhost_handle") (param i32 i32) (result i64)
    (call $log (i32.const 17) (i32.const 2))
    (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const 1))))"""
WARMUP_WASI_WAT = """(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1) (data (i32.const 16) "\\80ok") (data (i32.const 32) "\\11\\00\\00\\00\\02\\00\\00\\00")
  (func (export "wasmhost_alloc") (param i32) (result i32) i32.const 1024)
  (func (export "wasmhost_handle") (param i32 i32) (result i64)
    (drop (call $w (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 48)))
    (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const 1))))"""

class Host:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.wasm = shared_engine(self.settings)
        self.sandbox = Sandbox(self.wasm, self.settings)
        self.linkers = self.sandbox.linkers
        self.data = DataDir(Path(self.settings.data_dir))
        self.registry: Registry = Registry(self.data)  # the embedded FunctionStore (store/__init__.py)
        self.artifacts = ArtifactFiles(self.data, self.wasm.fingerprint)
        self.compiler = ModuleCompiler(self.wasm, CompileBudget.from_settings(self.settings))
        self.cache = CompiledCache(self.wasm, self.compiler, self.linkers, self.artifacts, self.registry.read_blob,
                                   self.settings.cache_max_modules, self.settings.cache_max_bytes)
        self._inline_off: dict[str, float] = {}  # digest -> monotonic time until which not to try inline
        self.registry.preload()
        self._warm_up()

    def _warm_up(self) -> None:
        """Run two tiny built-in modules once (plain and with WASI) through compile,
        artifact round trip and sandbox, so that the first real call after a start
        does not pay for first-use costs in Python, ctypes and wasmtime."""
        for wat in (WARMUP_WAT, WARMUP_WASI_WAT):
            module = compile_module(self.wasm, wasmtime.wat2wasm(wat))
            module = wasmtime.Module.deserialize(self.wasm.engine, module.serialize())
            prepared = self.cache.prepare("warm-up", module, 0)
            probe = FunctionVersion("warm-up", 0, "warm-up", 0, "handler", (), (),
                                    self.settings.default_limits())
            for _ in range(2):
                result = self.sandbox.run(prepared, probe, Request())
                if result.error is not None:  # never expected: say so loudly, keep serving
                    log.error("warm-up call failed: %r", result.error)

    # ---- admin ---------------------------------------------------------------------

    def deploy(self, name: str, code: bytes, *, limits: Limits | Mapping[str, Any] | None = None,
               config: Mapping[str, Any] | None = None, abi: Abi | None = None,
               entrypoint: str | None = None, private: bool | None = None,
               concurrency: int | None = None, expect: Expect | None = None) -> Deployment:
        """Validate, precompile and store a new version; it becomes active at once.
        `private`/`concurrency` set the function's policy (None: keep it; see `set_policy`).
        `expect` is checked before compiling and again when the version commits."""
        validate_name(name)
        check_private(private)
        self.check_concurrency(concurrency)
        if expect is not None:  # fail early, before the work of compiling; checked again at commit
            self.registry.check_expect(name, expect)
        if len(code) > self.settings.max_module_bytes:
            raise TooLarge(f"module of {len(code)} bytes exceeds the limit of {self.settings.max_module_bytes} bytes",
                           limit=self.settings.max_module_bytes)
        if not code.startswith(WASM_MAGIC):
            raise InvalidModule("not a WebAssembly module: it does not start with the bytes \\0asm")
        resolved = self.settings.resolve_limits(limits.to_dict() if isinstance(limits, Limits) else limits)
        variables = check_config(config)
        check_entrypoint(entrypoint)
        digest = hashlib.sha256(code).hexdigest()

        found = self.cache.load_artifact(digest)
        compile_seconds, tier = 0.0, "disk"
        if found is not None:
            module = found[0]
        else:
            started = time.perf_counter()
            module = self.compiler.compile(code)
            compile_seconds, tier = time.perf_counter() - started, "compile"
        shape = inspect_module(module, self.linkers, self.wasm.engine, abi, entrypoint)
        max_memory = self.settings.max_memory_mb * MIB
        if shape.min_memory_bytes > max_memory:
            raise InvalidModule(f"the module's initial memory of {shape.min_memory_bytes // MIB} MiB exceeds the "
                                f"server maximum of {self.settings.max_memory_mb} MiB", memory_mb=self.settings.max_memory_mb)
        prepared = self.cache.prepare(digest, module, len(code))
        routes: tuple[Route, ...] = ()
        if shape.abi == "wagi" and "_routes" in shape.func_exports:
            probe = FunctionVersion(name, 0, digest, len(code), shape.abi, shape.imports, shape.exports,
                                    resolved, variables, entrypoint)
            routes = self.sandbox.collect_routes(prepared, probe)
            check_route_targets(module, routes)

        # Valid: only now does anything reach the disk (artifact, blob, then the row). A deploy
        # that fails on the way (a full disk, a precondition that no longer holds) removes what
        # it wrote, so that it leaves nothing behind to take the space of the next one.
        wrote_artifact = found is None and self.cache.store_artifact(digest, module)
        wrote_blob = not self.registry.has_blob(digest)
        try:
            self.registry.put_blob(code)
            version = self.registry.create_version(
                name, digest=digest, size=len(code), abi=shape.abi, imports=shape.imports, exports=shape.exports,
                limits=resolved, config=variables, entrypoint=entrypoint, routes=routes, private=private,
                concurrency=concurrency, expect=expect)
        except BaseException:
            self._undo_writes(digest, wrote_artifact, wrote_blob)
            raise
        self.cache.put(prepared)
        log.info("deployed %s v%d (%s, %d bytes, %s)", name, version.version, shape.abi, len(code), tier)
        return Deployment(version, compile_seconds, tier)  # type: ignore[arg-type]

    def _undo_writes(self, digest: str, artifact: bool, blob: bool) -> None:
        """What a failed deploy wrote goes, unless a version uses it (an equal module deployed
        meanwhile). Never raises: the deploy's own error is the one to report."""
        try:
            if blob:
                self.registry.discard_blob(digest)
            if artifact and digest not in self.registry.referenced_digests():
                self.artifacts.discard(digest)
        except Exception:
            log.exception("could not remove what a failed deploy of %s wrote", digest[:12])

    def update(self, name: str, *, limits: Mapping[str, Any] | None = None,
               config: Mapping[str, Any] | None = None, private: bool | None = None,
               concurrency: int | None = None, expect: Expect | None = None) -> FunctionVersion:
        """Change what is named, as one write; applies from the next call. Limits and config make
        a new version (versions are immutable); limits not named keep the values of the version
        active when the change commits, not of the one this call read (see Registry.update)."""
        validate_name(name)
        changes = self.settings.check_limits(limits) if limits is not None else None
        new_config = check_config(config) if config is not None else None
        check_private(private)
        self.check_concurrency(concurrency)
        if not changes and new_config is None and private is None and concurrency is None:
            raise BadRequest("nothing to update: give limits, config, private or concurrency")
        return self.registry.update(name, limits=changes, config=new_config, private=private,
                                    concurrency=concurrency, expect=expect)

    def set_policy(self, name: str, *, private: bool | None = None,
                   concurrency: int | None = None, expect: Expect | None = None) -> FunctionVersion:
        """Who may call a function (private: only with a token) and how many of its calls may
        run on worker threads at once (0: the server default). Applies from the next call."""
        validate_name(name)
        check_private(private)
        self.check_concurrency(concurrency)
        if private is None and concurrency is None:
            raise BadRequest("nothing to change: give private and/or concurrency")
        return self.registry.set_policy(name, private=private, concurrency=concurrency, expect=expect)

    def check_concurrency(self, concurrency: int | None) -> None:
        check_concurrency(concurrency, self.settings.max_concurrency)

    def get(self, name: str) -> FunctionInfo:
        return self.registry.get(validate_name(name))

    def list(self) -> list[FunctionInfo]:
        return self.registry.list()

    def rollback(self, name: str, version: int | None = None, expect: Expect | None = None) -> FunctionVersion:
        return self.registry.rollback(validate_name(name), check_version(version), expect)

    def delete(self, name: str, expect: Expect | None = None) -> None:
        info = self.registry.get(validate_name(name))
        self.registry.delete(name, expect)
        still_used = self.registry.referenced_digests()
        for v in info.versions:
            if v.digest not in still_used:
                self.cache.evict(v.digest)

    # ---- calls ---------------------------------------------------------------------

    def resolve(self, name: str, version: int | None = None, authorized: bool = True) -> FunctionVersion:
        """The version a call runs; Unauthorized for a private function unless the caller
        showed a token (`authorized`: the HTTP layer's check; the Python API is trusted).
        A name is checked only when no function has it: the hot path is one dict lookup."""
        if type(name) is not str:
            validate_name(name)
        if version is not None:
            check_version(version)
        try:
            fv = self.registry.resolve(name, version)
        except NotFound:
            validate_name(name)  # a bad name is a bad request, not a missing function
            raise
        if fv.private and not authorized:
            raise Unauthorized(f"function {name!r} is private: call it with 'Authorization: Bearer <token>'")
        return fv

    def invoke(self, name: str, request: Request, version: int | None = None,
               authorized: bool = True) -> Invocation:
        """Run one request in a fresh instance. Guest failures are in `Invocation.error`;
        NotFound, Unauthorized and TooLarge (request body) are raised."""
        return self.run(self.resolve(name, version, authorized), request)

    def run(self, fv: FunctionVersion, request: Request) -> Invocation:
        """Run one request against a resolved version (see `resolve`)."""
        if len(request.body) > self.settings.max_request_bytes:
            raise TooLarge(f"request body of {len(request.body)} bytes exceeds the limit of "
                           f"{self.settings.max_request_bytes} bytes", limit=self.settings.max_request_bytes)
        prepared, tier, load_seconds = self.cache.get(fv.digest, fv)
        return self.sandbox.run(prepared, fv, request, tier, load_seconds)

    def collect_garbage(self, min_age_s: float = 3600.0) -> dict[str, int]:
        """Remove blobs and artifacts no version references any more, and files
        left half-written by a crash. Only files older than `min_age_s` go, so a
        deploy racing this in another process never loses its fresh blob."""
        removed_blobs = self.registry.gc_blobs(min_age_s)
        removed_artifacts = self.artifacts.collect(self.registry.referenced_digests(), min_age_s)
        if removed_blobs or removed_artifacts:
            log.info("garbage collection: %d blobs, %d artifact files removed", len(removed_blobs), removed_artifacts)
        return {"blobs": len(removed_blobs), "artifact_files": removed_artifacts}

    def invoke_inline(self, fv: FunctionVersion, method: str, path: str, query: bytes,
                      headers: Sequence[tuple[bytes, bytes]], body: bytes) -> Invocation | None:
        """Run a call of the resolved version `fv` (see `resolve`) on the calling thread when
        it is cheap, else return None. The request comes as the HTTP server has it: the
        handler's encoding is made from those bytes, and no `Request` is built unless the
        call goes to a worker.

        Cheap: the module is in the memory tier, speaks `handler` without WASI, and
        finishes within INLINE_FUEL and INLINE_HOST_CALLS. A call that runs out of
        that budget is abandoned (None) and must be rerun with `run` on a worker;
        that is safe because a guest has no effects outside its fresh instance. A
        function that overran is not tried inline again for INLINE_BACKOFF_S. This
        saves the thread hop for the calls that are shorter than the hop (bench/README.md,
        "Inline calls"), while bounding what an inline attempt can cost the caller.
        """
        if fv.abi != "handler" or len(body) > self.settings.max_request_bytes:
            return None
        now = time.monotonic()
        if self._inline_off.get(fv.digest, 0.0) > now:
            return None
        prepared = self.cache.peek(fv.digest)
        if prepared is None or prepared.uses_wasi:
            return None
        result = self.sandbox.run_inline(prepared, fv, method, path, query, headers, body, fv.config,
                                         INLINE_FUEL, INLINE_HOST_CALLS)
        if result is None:
            self._inline_off[fv.digest] = now + INLINE_BACKOFF_S
        return result

    def info(self) -> dict[str, Any]:
        from . import __version__
        s = self.settings
        return {
            "wasmhost": __version__,
            "engine": self.wasm.describe(),
            "limits": {"default": s.default_limits().to_dict(), "maximum": s.max_limits().to_dict()},
            "sizes": {"max_module_bytes": s.max_module_bytes, "max_request_bytes": s.max_request_bytes,
                      "max_response_bytes": s.max_response_bytes, "max_log_bytes": s.max_log_bytes},
            "concurrency": {"max_concurrency": s.max_concurrency, "max_queue": s.max_queue,
                            "function_concurrency": s.function_slots(), "function_queue": s.function_queue},
            "cache": {"modules": len(self.cache), "bytes": self.cache.memory_bytes(),
                      "max_modules": s.cache_max_modules, "max_bytes": s.cache_max_bytes},
        }

    def close(self) -> None:
        self.registry.close()

    def __enter__(self) -> "Host":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
