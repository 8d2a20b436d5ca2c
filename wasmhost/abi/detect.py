"""Which guest interface a module speaks, and whether we can satisfy its imports.

Runs once at deploy; its answers are stored with the version so that invoking
never has to look at the module's shape again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import wasmtime

from ..errors import InvalidModule
from ..models import ABIS, Abi, Route
from ..hostcalls import WASI_MODULE, Linkers

WASM_PAGE = 65536
HANDLER_EXPORTS = ("memory", "wasmhost_alloc", "wasmhost_handle")


@dataclass(frozen=True, slots=True)
class ModuleShape:
    abi: Abi
    imports: tuple[str, ...]  # "module.name"
    exports: tuple[str, ...]
    uses_wasi: bool
    min_memory_bytes: int
    func_exports: frozenset[str]


def _sig(ty: wasmtime.FuncType) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return tuple(str(p) for p in ty.params), tuple(str(r) for r in ty.results)


def _check_func(exports: dict[str, object], name: str, params: tuple[str, ...], results: tuple[str, ...]) -> None:
    ty = exports.get(name)
    want = f"({', '.join(params)}) -> ({', '.join(results)})"
    if not isinstance(ty, wasmtime.FuncType):
        raise InvalidModule(f"export {name!r} must be a function {want}")
    if _sig(ty) != (params, results):
        got = f"({', '.join(_sig(ty)[0])}) -> ({', '.join(_sig(ty)[1])})"
        raise InvalidModule(f"export {name!r} has type {got}; the interface requires {want}")


def check_imports(module: wasmtime.Module, linkers: Linkers, engine: wasmtime.Engine) -> tuple[list[str], bool]:
    """All imports as "module.name", and whether WASI is used; refuses unsupported ones."""
    store = wasmtime.Store(engine)
    names: list[str] = []
    missing: list[str] = []
    uses_wasi = False
    for imp in module.imports:
        label = f"{imp.module}.{imp.name}"
        names.append(label)
        if imp.module == WASI_MODULE:
            uses_wasi = True
        if imp.module not in (WASI_MODULE, "wasmhost") or not isinstance(imp.type, wasmtime.FuncType):
            missing.append(label)
            continue
        try:
            linkers.wasi.get(store, imp.module, imp.name or "")
        except wasmtime.WasmtimeError:
            missing.append(label)
    if missing:
        shown = ", ".join(missing[:20]) + (f" and {len(missing) - 20} more" if len(missing) > 20 else "")
        raise InvalidModule(
            f"unsupported imports: {shown}. wasmhost provides wasmhost.log and the "
            f"{WASI_MODULE} functions only", unsupported_imports=missing[:100])
    return names, uses_wasi


def inspect_module(module: wasmtime.Module, linkers: Linkers, engine: wasmtime.Engine,
                   abi: Abi | None = None, entrypoint: str | None = None) -> ModuleShape:
    """Detect (or check the requested) interface and validate the module's shape."""
    imports, uses_wasi = check_imports(module, linkers, engine)
    exports: dict[str, object] = {exp.name: exp.type for exp in module.exports}
    funcs = frozenset(name for name, ty in exports.items() if isinstance(ty, wasmtime.FuncType))
    if abi is None:
        if all(name in exports for name in HANDLER_EXPORTS):
            abi = "handler"
        elif "_start" in funcs or (entrypoint is not None and entrypoint in funcs) or "_routes" in funcs:
            abi = "wagi"
        else:
            raise InvalidModule(
                "unknown guest interface: a handler module exports memory, wasmhost_alloc and "
                "wasmhost_handle; a WAGI module is a WASI command exporting _start",
                exports=sorted(exports)[:50])
    if abi == "handler":
        _check_func(exports, "wasmhost_alloc", ("i32",), ("i32",))
        _check_func(exports, "wasmhost_handle", ("i32", "i32"), ("i64",))
        if "_initialize" in exports:
            _check_func(exports, "_initialize", (), ())
    elif abi == "wagi":
        if entrypoint is not None:
            _check_func(exports, entrypoint, (), ())
        elif "_start" in funcs:
            _check_func(exports, "_start", (), ())
        elif "_routes" not in funcs:
            raise InvalidModule("WAGI module has no exported function '_start'")
        if "_routes" in funcs:
            _check_func(exports, "_routes", (), ())
    else:
        raise InvalidModule(f"unknown interface {abi!r}; known interfaces are {' and '.join(ABIS)}")
    memory = exports.get("memory")
    if abi == "handler" and not isinstance(memory, wasmtime.MemoryType):
        raise InvalidModule("export 'memory' must be a linear memory")
    min_bytes = 0
    if isinstance(memory, wasmtime.MemoryType):
        if memory.is_64:
            raise InvalidModule("64-bit memories are not supported")
        min_bytes = memory.limits.min * WASM_PAGE
    return ModuleShape(abi, tuple(imports), tuple(exports), uses_wasi, min_bytes, funcs)


def check_route_targets(module: wasmtime.Module, routes: Sequence[Route]) -> None:
    """Every route must name a `() -> ()` function: wasmtime calls exports unchecked
    on the fast path, and a wrong signature there would crash the process."""
    exports: dict[str, object] = {exp.name: exp.type for exp in module.exports}
    for route in routes:
        _check_func(exports, route.export, (), ())
