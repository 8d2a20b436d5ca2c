"""What compiling in a child process (wasmhost/compiler.py) costs a deploy.

For each module, `ModuleCompiler.compile` with every module compiled in this process
(the baseline) and with every module compiled in a budgeted child, interleaved, in
one process: median seconds of each, their difference (the child's start, the
artifact's trip through a pipe, deserializing it) and their ratio. The child's peak
RSS is read from getrusage(RUSAGE_CHILDREN) after each child compile.

Usage: python bench/bench_compile.py [--runs N] [--out FILE]
Speed is reported, never asserted: these machines are noisy.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import wasmtime  # noqa: E402

from modules.build import build_all  # noqa: E402
from wasmhost.compiler import CompileBudget, ModuleCompiler  # noqa: E402
from wasmhost.engine import shared_engine  # noqa: E402
from wasmhost.settings import Settings  # noqa: E402

IN_PROCESS = CompileBudget(seconds=600, memory_mb=8192, isolate_above_bytes=1 << 40)
IN_CHILD = CompileBudget(seconds=600, memory_mb=8192, isolate_above_bytes=0)


def many_functions(n: int) -> bytes:
    """A module of `n` one-line functions: the cheapest code per function to upload."""
    funcs = "\n".join(f"(func $f{i} (result i32) (i32.const {i}))" for i in range(n))
    return bytes(wasmtime.wat2wasm(f'(module (memory (export "memory") 1) {funcs})'))


def modules(built: Path) -> dict[str, bytes]:
    found = {
        "hello_handler": (built / "hello_handler.wasm").read_bytes(),
        "functions-5000": many_functions(5_000),
        "functions-50000": many_functions(50_000),
    }
    for name in ("zig-markdown", "rust-large", "go-hello"):
        path = ROOT / "modules" / "wasm" / f"{name}.wasm"
        if path.exists():
            found[name] = path.read_bytes()
    return found


def child_peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    built = build_all()["hello_handler"].parent
    wasm = shared_engine(Settings())
    here, there = ModuleCompiler(wasm, IN_PROCESS), ModuleCompiler(wasm, IN_CHILD)
    rows = []
    for name, module in modules(built).items():
        times: dict[str, list[float]] = {"in_process": [], "child": []}
        peak = 0.0
        for _ in range(args.runs):
            for kind, compiler in (("in_process", here), ("child", there)):
                started = time.perf_counter()
                compiler.compile(module)
                times[kind].append(time.perf_counter() - started)
            peak = max(peak, child_peak_mib())
        p, c = statistics.median(times["in_process"]), statistics.median(times["child"])
        row = {"module": name, "bytes": len(module), "in_process_ms": round(p * 1e3, 2),
               "child_ms": round(c * 1e3, 2), "child_minus_in_process_ms": round((c - p) * 1e3, 2),
               "child_over_in_process": round(c / p, 3), "children_peak_rss_mib_so_far": round(peak, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.node(),
              "processor": platform.processor() or platform.machine(), "python": platform.python_version(),
              "wasmtime": wasmtime.__version__ if hasattr(wasmtime, "__version__") else None,
              "runs": args.runs, "rows": rows}
    print("\n| module | bytes | in process (ms) | child (ms) | child − in process (ms) | child / in process |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['module']} | {r['bytes']:,} | {r['in_process_ms']} | {r['child_ms']} | "
              f"{r['child_minus_in_process_ms']} | {r['child_over_in_process']}× |")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
