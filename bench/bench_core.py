"""Host-side cost of a fresh-instance call, per cache tier (issue: core runtime).

Measures, in this process and in fresh subprocesses, on this machine:
  memory  Host.invoke of an already-cached module (fresh Store + instance per call),
          against a baseline in the same process: the plain wasmtime-py API doing
          the same fresh-instance call (Store, fuel, deadline, Linker.instantiate,
          exports, alloc, write, handle, read).
  disk    the first Host.invoke in a new process whose data dir holds the artifact.
  compile the same with the artifacts removed (what a host without a disk tier pays).

Usage: python bench/bench_core.py [--quick] [--out FILE]
Speed is reported as figures and ratios, never asserted: these machines are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from modules.build import build_all

MODULES = ["hello_nolog", "hello_handler", "hello_wagi"]


def large_module_wat(functions: int = 3000) -> str:
    """A handler answering hello, with `functions` non-trivial functions reachable
    through a table: a stand-in for a big real-world module (~2+ MB of code)."""
    parts = ['(module (memory (export "memory") 1)',
             f'(table {functions} funcref)',
             '(data (i32.const 1024) "\\83\\a6status\\cc\\c8\\a7headers\\91\\92\\accontent-type'
             '\\b9text/plain; charset=utf-8\\a4body\\aeHello, world!\\0a")',
             '(func (export "wasmhost_alloc") (param i32) (result i32) i32.const 4096)',
             '(func (export "wasmhost_handle") (param i32 i32) (result i64)'
             ' (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const 79)))']
    for i in range(functions):
        body = " ".join(f"(local.set 1 (i64.add (i64.mul (local.get 1) (i64.const {i * 31 + k})) (i64.extend_i32_u (i32.add (local.get 0) (i32.const {k})))))"
                        for k in range(40))
        parts.append(f"(func $f{i} (param i32) (result i64) (local i64) {body} (local.get 1))")
    parts.append(f"(elem (i32.const 0) {' '.join(f'$f{i}' for i in range(functions))})")
    parts.append(")")
    return "\n".join(parts)


def timed_loop(fn, n: int, repeats: int) -> list[float]:
    """µs per call for each of `repeats` runs of `n` calls."""
    for _ in range(min(n, 2000)):
        fn()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - start) / n * 1e6)
    return runs


def baseline_call(engine, module, linker, request: bytes):
    """The plain wasmtime-py path for one fresh-instance handler call."""
    import wasmtime
    store = wasmtime.Store(engine)
    store.set_fuel(1_000_000_000)
    store.set_epoch_deadline(1000)
    store.set_limits(memory_size=64 << 20)
    instance = linker.instantiate(store, module)
    exports = instance.exports(store)
    ptr = exports["wasmhost_alloc"](store, len(request))
    memory = exports["memory"]
    memory.write(store, request, ptr)
    packed = exports["wasmhost_handle"](store, ptr, len(request))
    out = memory.read(store, packed >> 32, (packed >> 32) + (packed & 0xFFFFFFFF))
    return bytes(out)


def bench_memory_tier(built: dict[str, Path], n: int, repeats: int) -> dict:
    from wasmhost.abi.handler_codec import encode_request_py as encode_request
    from wasmhost.host import Host
    from wasmhost.models import Request
    from wasmhost.settings import Settings

    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp, Host(Settings(data_dir=Path(tmp))) as host:
        request = Request(method="GET", path="/", script_name="/fn/x")
        for name in MODULES:
            host.deploy(name.replace("_", "-"), built[name].read_bytes())
        for name in MODULES:
            fname = name.replace("_", "-")
            runs = timed_loop(lambda: host.invoke(fname, request), n, repeats)
            inv = host.invoke(fname, request)
            assert inv.ok, inv.error
            results[name] = {"invoke_us_runs": [round(r, 2) for r in runs],
                             "invoke_us_median": round(statistics.median(runs), 2),
                             "tier": inv.tier}
        # Baseline in the same process: wasmtime-py's own API, same engine settings.
        import wasmtime
        module = wasmtime.Module(host.wasm.engine, built["hello_nolog"].read_bytes())
        linker = wasmtime.Linker(host.wasm.engine)
        body = encode_request(request, {})
        runs = timed_loop(lambda: baseline_call(host.wasm.engine, module, linker, body), n, repeats)
        results["baseline_wasmtime_py_hello_nolog"] = {"us_runs": [round(r, 2) for r in runs],
                                                       "us_median": round(statistics.median(runs), 2)}
        results["engine"] = host.wasm.describe()
        results["invocation_path"] = host.sandbox.path
    # The same calls through the ctypes path (what runs when the C extension is not built).
    with tempfile.TemporaryDirectory() as tmp, Host(Settings(data_dir=Path(tmp), fastpath=False)) as host:
        request = Request(method="GET", path="/", script_name="/fn/x")
        for name in MODULES:
            host.deploy(name.replace("_", "-"), built[name].read_bytes())
        for name in MODULES:
            fname = name.replace("_", "-")
            runs = timed_loop(lambda: host.invoke(fname, request), n, repeats)
            results[name]["ctypes_path_us_median"] = round(statistics.median(runs), 2)
    ratio = results["hello_nolog"]["invoke_us_median"] / results["baseline_wasmtime_py_hello_nolog"]["us_median"]
    results["ratio_hello_nolog_vs_baseline"] = round(ratio, 3)
    return results


FIRST_CALL = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from wasmhost.host import Host
from wasmhost.models import Request
from wasmhost.settings import Settings
t0 = time.perf_counter()
host = Host(Settings(data_dir=Path(sys.argv[2])))
t1 = time.perf_counter()
inv = host.invoke(sys.argv[3], Request(path="/"))
t2 = time.perf_counter()
assert inv.ok, inv.error
print(json.dumps({"tier": inv.tier, "first_call_s": t2 - t1, "host_start_s": t1 - t0,
                  "load_s": inv.timings.load}))
"""


def first_call(data_dir: Path, name: str) -> dict:
    out = subprocess.run([sys.executable, "-c", FIRST_CALL, str(ROOT), str(data_dir), name],
                         capture_output=True, text=True, timeout=600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_restart(built: dict[str, Path], large: bytes, restarts: int) -> dict:
    from wasmhost.host import Host
    from wasmhost.settings import Settings

    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        with Host(Settings(data_dir=data)) as host:
            for name in MODULES:
                host.deploy(name.replace("_", "-"), built[name].read_bytes())
            dep = host.deploy("large", large)
            results["large_module"] = {"bytes": len(large), "deploy_compile_ms": round(dep.compile_seconds * 1e3, 1)}
        for name in [m.replace("_", "-") for m in MODULES] + ["large"]:
            disk = [first_call(data, name) for _ in range(restarts)]
            assert all(d["tier"] == "disk" for d in disk), disk
            saved = data / "artifacts.saved"
            shutil.copytree(data / "artifacts", saved)
            compiled = []
            for _ in range(max(3, restarts // 3)):
                shutil.rmtree(data / "artifacts")
                compiled.append(first_call(data, name))
            shutil.rmtree(data / "artifacts")
            shutil.move(saved, data / "artifacts")
            assert all(c["tier"] == "compile" for c in compiled), compiled
            d_ms = statistics.median(d["first_call_s"] for d in disk) * 1e3
            c_ms = statistics.median(c["first_call_s"] for c in compiled) * 1e3
            results[name] = {
                "disk_first_call_ms_median": round(d_ms, 3),
                "disk_first_call_ms_all": [round(d["first_call_s"] * 1e3, 3) for d in disk],
                "compile_first_call_ms_median": round(c_ms, 3),
                "compile_over_disk": round(c_ms / d_ms, 1),
                "host_start_ms_median": round(statistics.median(d["host_start_s"] for d in disk) * 1e3, 1),
            }
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    parser.add_argument("--out", type=Path, help="JSON results file (default bench/results/core-<date>-<host>.json)")
    args = parser.parse_args()
    n, repeats, restarts = (2000, 3, 3) if args.quick else (20000, 7, 9)

    with tempfile.TemporaryDirectory() as tmp:
        built = build_all(Path(tmp))
        import wasmtime
        large = wasmtime.wat2wasm(large_module_wat())
        print(f"memory tier: {n} calls x {repeats} runs per module ...", flush=True)
        memory = bench_memory_tier(built, n, repeats)
        print(f"restarts: {restarts} fresh processes per module (disk), fewer for compile ...", flush=True)
        restart = bench_restart(built, large, restarts)

    machine = {"node": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
               "machine": platform.machine()}
    report = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine,
              "memory_tier": memory, "restart": restart}
    out = args.out or ROOT / "bench" / "results" / f"core-{datetime.now():%Y-%m-%d}-{platform.node() or 'host'}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")

    print("\n| module | memory tier µs/call, C path (median) | same, ctypes path | first call after restart, disk (ms) "
          "| same, compile (ms) | compile/disk |")
    print("|---|---|---|---|---|---|")
    for name in MODULES + ["large"]:
        mem = memory.get(name, {}).get("invoke_us_median", "—")
        slow = memory.get(name, {}).get("ctypes_path_us_median", "—")
        r = restart[name.replace("_", "-")]
        print(f"| {name} | {mem} | {slow} | {r['disk_first_call_ms_median']} | {r['compile_first_call_ms_median']} "
              f"| {r['compile_over_disk']}× |")
    base = memory["baseline_wasmtime_py_hello_nolog"]["us_median"]
    print(f"\nbaseline (plain wasmtime-py fresh-instance call, same process): {base} µs; "
          f"wasmhost/baseline = {memory['ratio_hello_nolog_vs_baseline']}")
    print(f"large module: {restart['large_module']['bytes']} bytes, compile at deploy "
          f"{restart['large_module']['deploy_compile_ms']} ms")
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
