"""Extism peer: the cost per call of the same tiny "hello" function in Extism and in wasmhost.

Everything runs in ONE Python process, and the runs of the variants are interleaved
(run r of every variant, then run r+1, in a rotating order), so that the noise of
this shared 2-core machine hits every variant alike. Each variant's answer is
checked against b"Hello, world!\\n" after each of its timed runs.

Extism variants (Python SDK `extism`, native runtime `extism-sys`):
  fresh_from_bytes          `extism.Plugin(wasm_bytes)` + call, per call. Builds a new
                            CompiledPlugin each time: a new wasmtime Engine, the kernel and
                            the plugin "compiled" (by default a hit in wasmtime's on-disk
                            cache, which Extism turns on; here pointed at a temp directory),
                            then a new Store, Linker and instances.
  fresh_from_manifest       the same from a manifest dict ({"wasm": [{"data": ...}]}).
  fresh_from_bytes_nocache  the same with EXTISM_CACHE_CONFIG="" (cache off): a real
                            compile of kernel + plugin on every call.
  fresh_from_compiled       one `CompiledPlugin`, then `extism.Plugin(compiled)` + call per
                            call: a new Store + Linker + kernel and plugin instances per call,
                            no compiling. The fair peer of wasmhost, which also compiles once.
                            (strace, per call: 4 fresh mmap reservations of 4 GiB + 64 MiB,
                            4 munmap, ~6 futex: no pooling allocator, a timer-thread message.)
  fresh_from_compiled_metered  the same, compiled with a fuel limit (1e9) and a manifest
                            timeout (10 s): wasmhost's default limits. The Python SDK 1.1.1
                            does not expose this; it calls extism-sys's C function directly.
  reuse_one_plugin          one Plugin for every call: NOT a fresh instance (globals and the
                            plugin's memory persist across calls; only the kernel's allocator
                            is reset). A reference, not a peer.
wasmhost variants: `Host.invoke` of modules hello_nolog (no imports) and hello_handler
(one wasmhost.log call): a fresh Store + instance per call, with fuel and an epoch
deadline, request encoded into and response decoded from guest memory (msgpack).

Usage: python bench/peer_extism.py [N [REPEATS]]   (prints JSON)
Speed is reported, never asserted: these machines are noisy.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

HELLO_WAT = ROOT / "bench" / "peers" / "extism" / "hello.wat"
EXPECTED = b"Hello, world!\n"
WASMHOST_MODULES = ("hello_nolog", "hello_handler")
FUEL = 1_000_000_000  # wasmhost's default fuel per call (Settings.default_fuel)
TIMEOUT_MS = 10_000  # wasmhost's default deadline (Settings.default_timeout_ms)

# A plugin whose `count` export increments a global and outputs it (8 bytes, little
# endian): 1, 1, 1 over three calls means a fresh instance per call; 1, 2, 3 a reused one.
COUNTER_WAT = """(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (global $calls (mut i64) (i64.const 0))
  (func (export "count") (result i32) (local $out i64)
    (global.set $calls (i64.add (global.get $calls) (i64.const 1)))
    (local.set $out (call $alloc (i64.const 8)))
    (call $store_u64 (local.get $out) (global.get $calls))
    (call $output_set (local.get $out) (i64.const 8))
    (i32.const 0)))"""


def extism_version() -> str | None:
    """The Extism runtime version, or None when the SDK (or its native library) cannot
    be imported or used here: callers (the test, the report) skip Extism then."""
    try:
        import extism

        return str(extism.extism_version())
    except Exception:  # noqa: BLE001 - ImportError, or cffi failing to load libextism_sys
        return None


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def hello_plugin_wasm() -> bytes:
    """bench/peers/extism/hello.wat as wasm bytes (built at run time: no toolchain needed).
    bytes, not bytearray: the SDK's cffi call accepts only bytes."""
    import wasmtime

    return bytes(wasmtime.wat2wasm(HELLO_WAT.read_text(encoding="utf-8")))


@contextlib.contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    """Set an environment variable for a block. Extism reads EXTISM_CACHE_CONFIG each
    time it builds a CompiledPlugin, so this switches its compile cache per variant."""
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def _manifest_json(wasm: bytes, **extra: Any) -> bytes:
    return json.dumps({"wasm": [{"data": base64.b64encode(wasm).decode()}], **extra}).encode()


def _compiled_with_limits(wasm: bytes, fuel: int, timeout_ms: int) -> Any:
    """A CompiledPlugin with a fuel limit and a timeout, through extism-sys's
    `extism_compiled_plugin_new_with_fuel_limit` (the SDK 1.1.1 has no argument for fuel).
    A subclass so that `extism.Plugin(...)` accepts it and frees it as usual."""
    from extism.extism import CompiledPlugin
    from extism_sys import ffi, lib

    source = _manifest_json(wasm, timeout_ms=timeout_ms)

    class LimitedCompiledPlugin(CompiledPlugin):  # type: ignore[misc]
        def __init__(self) -> None:  # replaces the SDK's constructor
            self.functions: list[Any] = []
            errmsg = ffi.new("char**")
            self.pointer = lib.extism_compiled_plugin_new_with_fuel_limit(
                source, len(source), ffi.NULL, 0, False, fuel, errmsg)
            if self.pointer == ffi.NULL:
                msg = ffi.string(errmsg[0]).decode()
                lib.extism_plugin_new_error_free(errmsg[0])
                raise RuntimeError(msg)

    return LimitedCompiledPlugin()


def _extism_variants(wasm: bytes, cache_toml: Path) -> tuple[dict[str, Callable[[], bytes]], dict[str, str], dict[str, str]]:
    """{name: one call returning the output}, {name: EXTISM_CACHE_CONFIG for it},
    {name: why it is unavailable}. Objects built here live as long as the closures."""
    import extism
    from extism.extism import CompiledPlugin  # not exported by extism/__init__ in 1.1.1

    calls: dict[str, Callable[[], bytes]] = {}
    missing: dict[str, str] = {}
    manifest = {"wasm": [{"data": wasm}]}
    calls["extism_fresh_from_bytes"] = lambda: extism.Plugin(wasm, functions=[]).call("hello", b"")
    calls["extism_fresh_from_manifest"] = lambda: extism.Plugin(manifest, functions=[]).call("hello", b"")
    calls["extism_fresh_from_bytes_nocache"] = lambda: extism.Plugin(wasm, functions=[]).call("hello", b"")
    with _env("EXTISM_CACHE_CONFIG", str(cache_toml)):
        compiled = CompiledPlugin(wasm, functions=[])
        calls["extism_fresh_from_compiled"] = lambda: extism.Plugin(compiled).call("hello", b"")
        try:
            limited = _compiled_with_limits(wasm, FUEL, TIMEOUT_MS)
            calls["extism_fresh_from_compiled_metered"] = lambda: extism.Plugin(limited).call("hello", b"")
        except Exception as e:  # noqa: BLE001 - an extism-sys without the C function: report, go on
            missing["extism_fresh_from_compiled_metered"] = repr(e)
        one = extism.Plugin(wasm, functions=[])
        calls["extism_reuse_one_plugin"] = lambda: one.call("hello", b"")
    cache = {name: ("" if name.endswith("_nocache") else str(cache_toml)) for name in calls}
    return calls, cache, missing


def _state_across_calls(cache_toml: Path) -> dict[str, list[int]]:
    """What the counter plugin answers on three calls per way of calling: shows which
    variants really get a fresh instance (1, 1, 1) and which reuse one (1, 2, 3)."""
    import extism
    import wasmtime
    from extism.extism import CompiledPlugin

    wasm = bytes(wasmtime.wat2wasm(COUNTER_WAT))
    def decode(out: bytes) -> int:
        return int.from_bytes(out, "little")

    with _env("EXTISM_CACHE_CONFIG", str(cache_toml)):
        compiled = CompiledPlugin(wasm, functions=[])
        one = extism.Plugin(wasm, functions=[])
        return {
            "extism_fresh_from_bytes": [decode(extism.Plugin(wasm, functions=[]).call("count", b"")) for _ in range(3)],
            "extism_fresh_from_compiled": [decode(extism.Plugin(compiled).call("count", b"")) for _ in range(3)],
            "extism_reuse_one_plugin": [decode(one.call("count", b"")) for _ in range(3)],
        }


def _calls_per_run(name: str, n: int) -> int:
    """The millisecond variants run fewer calls, so that a run stays short on a shared
    machine; each reports its own count."""
    if name.endswith("_nocache"):
        return max(3, n // 100)
    if name in ("extism_fresh_from_bytes", "extism_fresh_from_manifest"):
        return max(5, n // 10)
    return n


def extism_per_call(n: int, repeats: int) -> dict:
    """µs per call of each Extism variant and of wasmhost `Host.invoke`, measured in this
    process with the runs interleaved; medians over the runs and the ratios
    wasmhost / Extism (< 1: wasmhost is cheaper per call). Wall clock (`us_*`) and CPU
    time of the whole process (`cpu_us_*`: every thread, so Extism's timer and cache
    threads count too; steadier than wall clock when other work shares the cores).
    Raises RuntimeError when Extism is not usable (see `extism_version`)."""
    version = extism_version()
    if version is None:
        raise RuntimeError("the extism SDK cannot be imported here (pip install extism)")
    from modules.build import build_all
    from wasmhost.host import Host
    from wasmhost.models import Request
    from wasmhost.settings import Settings

    with tempfile.TemporaryDirectory(prefix="peer-extism-", ignore_cleanup_errors=True) as tmp:
        tmp_path = Path(tmp)
        # Extism's default is wasmtime's on-disk cache in ~/.cache/wasmtime: keep the
        # same behaviour, in a directory of our own.
        cache_toml = tmp_path / "wasmtime-cache.toml"
        cache_toml.write_text(f'[cache]\ndirectory = "{tmp_path / "wasmtime-cache"}"\n', encoding="utf-8")
        built = build_all(tmp_path / "modules")
        wasm = hello_plugin_wasm()
        calls, cache_for, missing = _extism_variants(wasm, cache_toml)

        with Host(Settings(data_dir=tmp_path / "data")) as host:
            request = Request(method="GET", path="/", script_name="/fn/x")
            for module in WASMHOST_MODULES:
                fname = module.replace("_", "-")
                host.deploy(fname, built[module].read_bytes())

                def invoke(fname: str = fname) -> bytes:
                    inv = host.invoke(fname, request)
                    if not inv.ok or inv.response is None:
                        raise RuntimeError(f"wasmhost {fname}: {inv.error!r}")
                    return inv.response.body

                calls[f"wasmhost_{module}"] = invoke
                cache_for[f"wasmhost_{module}"] = str(cache_toml)

            names = list(calls)
            counts = {name: _calls_per_run(name, n) for name in names}
            runs: dict[str, list[float]] = {name: [] for name in names}  # wall clock
            cpu_runs: dict[str, list[float]] = {name: [] for name in names}  # CPU, all threads
            for name in names:  # warm-up: first-use costs (cache fill, ctypes, timer thread)
                with _env("EXTISM_CACHE_CONFIG", cache_for[name]):
                    for _ in range(min(counts[name], 50)):
                        calls[name]()
            for r in range(repeats):
                shift = r % len(names)
                for name in names[shift:] + names[:shift]:
                    fn, count = calls[name], counts[name]
                    with _env("EXTISM_CACHE_CONFIG", cache_for[name]):
                        start, cpu_start = time.perf_counter(), time.process_time()
                        for _ in range(count):
                            fn()
                        elapsed = time.perf_counter() - start
                        cpu = time.process_time() - cpu_start
                        out = bytes(fn())
                    if out != EXPECTED:
                        raise AssertionError(f"{name} answered {out!r}, expected {EXPECTED!r}")
                    runs[name].append(elapsed / count * 1e6)
                    cpu_runs[name].append(cpu / count * 1e6)
            invocation_path = host.sandbox.path
        state = _state_across_calls(cache_toml)

    variants: dict[str, dict[str, Any]] = {name: {"calls_per_run": counts[name], "us_runs": [round(x, 2) for x in runs[name]],
                       "us_median": round(statistics.median(runs[name]), 2),
                       "cpu_us_runs": [round(x, 2) for x in cpu_runs[name]],
                       "cpu_us_median": round(statistics.median(cpu_runs[name]), 2), "output_ok": True}
                for name in names}
    ratios = {f"{w}/{e}": round(variants[w]["us_median"] / variants[e]["us_median"], 4)
              for w in names if w.startswith("wasmhost_")
              for e in names if e.startswith("extism_")}
    cpu_ratios = {f"{w}/{e}": round(variants[w]["cpu_us_median"] / variants[e]["cpu_us_median"], 4)
                  for w in names if w.startswith("wasmhost_")
                  for e in names if e.startswith("extism_")}
    return {
        "n": n,
        "repeats": repeats,
        "extism": {"runtime": version, "python_sdk": _package_version("extism"),
                   "extism_sys": _package_version("extism-sys")},
        "wasmhost_invocation_path": invocation_path,
        "wasmtime_py": _package_version("wasmtime"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "variants": variants,
        "unavailable": missing,
        "ratios_wasmhost_over_extism": ratios,
        "cpu_ratios_wasmhost_over_extism": cpu_ratios,
        "instance_state_across_3_calls": state,
        "notes": [
            ("wasmhost meters every call (fuel 1e9, 10 s epoch deadline); Extism meters nothing by "
             "default (no fuel, no timeout; its epoch timer thread is told of every call all the same). "
             "extism_fresh_from_compiled_metered sets the same fuel and timeout as wasmhost."),
            ("Extism's input is empty (b''); wasmhost encodes the HTTP request (msgpack) into guest "
             "memory and decodes a msgpack response {status, headers, body}: more work per call."),
            ("extism_fresh_from_bytes/_manifest: a new wasmtime Engine per call, kernel + plugin read "
             "from wasmtime's on-disk cache (Extism's default); _nocache compiles them every call."),
            "extism_reuse_one_plugin is not a fresh instance: see instance_state_across_3_calls.",
        ],
    }


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    n_arg = args[0] if args else 2000
    repeats_arg = args[1] if len(args) > 1 else 5
    if extism_version() is None:
        print(json.dumps({"extism": None, "reason": "the extism SDK cannot be imported here"}))
        sys.exit(0)
    print(json.dumps(extism_per_call(n_arg, repeats_arg), indent=2))
