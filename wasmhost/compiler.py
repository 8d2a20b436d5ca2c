"""Compiling untrusted modules within a time and memory budget.

Cranelift's time and memory grow with a module's code, and wasmtime cannot
interrupt a compile: one 64 MiB upload could hold a thread for minutes and exhaust
the host's memory (bench/design-figures.md: compile-cost). A module over `isolate_above_bytes` is
therefore compiled in a child process, under RLIMIT_DATA and a deadline, and this
process deserializes the artifact the child writes. Smaller modules compile in
process: starting the child costs more than most of them take, and the worst of them
stays well inside the budget.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import wasmtime

from .engine import WasmEngine
from .errors import InternalError, InvalidModule, TooLarge
from .module_shape import check_declared_shape
from .settings import Settings

log = logging.getLogger("wasmhost.compiler")

# Exit codes of the child (compile_child.py).
CHILD_INVALID = 2  # wasmtime refused the module; its message is on stderr
CHILD_OUT_OF_MEMORY = 3  # Python's MemoryError (Rust's allocation failures abort: SIGABRT)
MAX_CHILDREN = 2  # compiler children at once per process: each may use its whole memory budget
PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
CHILD_BOOT = f"import sys; sys.path.insert(0, {PACKAGE_ROOT!r}); from wasmhost.compile_child import main; main()"


@dataclass(frozen=True, slots=True)
class CompileBudget:
    seconds: int
    memory_mb: int
    isolate_above_bytes: int  # larger modules compile in a child under the budget; 0: every module

    @classmethod
    def from_settings(cls, settings: Settings) -> "CompileBudget":
        return cls(settings.max_compile_seconds, settings.max_compile_mb, settings.isolate_compile_above_bytes)


def module_error(wasm: WasmEngine, message: str) -> InvalidModule:
    """wasmtime's refusal of a module, in our words (the same from this process or a child)."""
    text = [line.strip() for line in message.strip().splitlines() if line.strip()]
    detail = " ".join(text[:3])[:300]
    if "instance allocation for this module requires" in detail:
        need = re.search(r"requires (\d+) bytes which exceeds the configured maximum of (\d+) bytes", detail)
        sizes = f" ({need.group(1)} bytes; the limit is {need.group(2)})" if need else ""
        return InvalidModule("the module needs more per-instance state than this server allows"
                             f"{sizes}: it exports or references too many functions, globals or tables")
    if "pooling allocator" in detail:
        return InvalidModule("the module's memory or tables are larger than this server allows "
                             f"(max memory {wasm.config.max_memory_bytes // (1024 * 1024)} MiB): {detail}")
    return InvalidModule(f"not a valid WebAssembly module: {detail}")


def compile_module(wasm: WasmEngine, wasm_bytes: bytes) -> wasmtime.Module:
    """Validate and compile in this process, without a budget; any failure is the module's fault."""
    check_declared_shape(wasm, wasm_bytes)
    try:
        return wasmtime.Module(wasm.engine, wasm_bytes)
    except wasmtime.WasmtimeError as exc:
        raise module_error(wasm, str(exc)) from None


def child_environment() -> dict[str, str]:
    """The child's whole environment: nothing of ours (tokens, secrets) reaches it."""
    return {"PATH": os.defpath, "LC_ALL": "C.UTF-8"}


class ModuleCompiler:
    """Compiles modules for one Engine under one budget."""

    def __init__(self, wasm: WasmEngine, budget: CompileBudget) -> None:
        self.wasm = wasm
        self.budget = budget
        self._children = threading.BoundedSemaphore(MAX_CHILDREN)

    def compile(self, wasm_bytes: bytes) -> wasmtime.Module:
        """Validate and compile; InvalidModule for a bad module, TooLarge over the budget."""
        if len(wasm_bytes) <= self.budget.isolate_above_bytes:
            return compile_module(self.wasm, wasm_bytes)
        check_declared_shape(self.wasm, wasm_bytes)
        with self._children:
            artifact = self._compile_in_child(wasm_bytes)
        try:
            # The pooling allocator checks the module here too, as it would in Module().
            return wasmtime.Module.deserialize(self.wasm.engine, artifact)
        except wasmtime.WasmtimeError as exc:
            raise module_error(self.wasm, str(exc)) from None

    def _compile_in_child(self, wasm_bytes: bytes) -> bytes:
        spec = json.dumps({"engine": asdict(self.wasm.config), "memory_mb": self.budget.memory_mb,
                           "cpu_seconds": self.budget.seconds * (os.cpu_count() or 1) + 5})
        try:
            done = subprocess.run([sys.executable, "-I", "-c", CHILD_BOOT, spec], input=wasm_bytes,
                                  capture_output=True, timeout=self.budget.seconds, env=child_environment(),
                                  cwd="/")
        except subprocess.TimeoutExpired:
            raise TooLarge(f"compiling the module took longer than this server's limit of {self.budget.seconds} s",
                           compile_seconds=self.budget.seconds) from None
        except OSError as exc:
            log.error("could not start a compiler process: %s", exc)
            raise InternalError("could not start a compiler process") from None
        if done.returncode == 0:
            return done.stdout
        stderr = done.stderr.decode("utf-8", "replace")
        if done.returncode == CHILD_INVALID:
            raise module_error(self.wasm, stderr)
        # Rust aborts when an allocation fails (SIGABRT); the kernel's OOM killer sends SIGKILL;
        # RLIMIT_CPU (a backstop should we be gone) sends SIGXCPU.
        if done.returncode in (CHILD_OUT_OF_MEMORY, -signal.SIGABRT, -signal.SIGKILL, -signal.SIGXCPU):
            raise TooLarge(f"compiling the module needed more than this server's limit of {self.budget.memory_mb} "
                           "MiB of memory", compile_mb=self.budget.memory_mb)
        log.error("compiler process failed with exit status %d: %s", done.returncode, stderr[-2000:])
        raise InternalError("the compiler process failed; the server log says why")
