"""The wasmhost benchmark suite: cold-start tiers, peers side by side, throughput, memory (`make bench`).

Sections, in order (each prints progress; a failing section is recorded and the others still run):
  host     per workload, in process: memory tier (fresh instance, compiled code in memory),
           disk and compile tiers (first call in a new process), the naive peer (compile per
           request, what WAGI did) and the plain wasmtime-py baseline
  http     over loopback HTTP: latency of every workload against the floor (a bare Starlette
           endpoint, same uvicorn settings) and the Node.js peer; first response after a restart
           (disk, compile); deploy-to-first-response
  peers    per fresh-instance call in process: Node.js (V8) and Extism's Python SDK, each
           against wasmhost's Host.invoke of the same module in the same run
  load     wrk at concurrency 1/8/32/128 with 1 and 2 workers: floor, wasmhost, Node.js;
           RSS per worker at rest and under load

Writes bench/results/<date>-<machine>.json, .md and -<chart>.png, and (on a full run) the
"Latest results" part of bench/README.md. Figures are reported, never asserted: this
machine is noisy; the ratios within one run are what to compare.

Usage: python bench/run.py [--quick] [--only host,http,peers,load] [--out-dir DIR] [--no-readme]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import http_tiers, report, tiers  # noqa: E402
from bench.common import machine_info  # noqa: E402
from bench.workloads import WORKLOADS  # noqa: E402

SECTIONS = ("host", "http", "peers", "load")


class Progress:
    """Timestamped progress lines, so a 10-minute run shows where it is."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self, message: str) -> None:
        print(f"[{time.perf_counter() - self.start:6.1f} s] {message}", flush=True)


def sizes(quick: bool) -> dict[str, float]:
    """How much of everything: the full run fits in ~10 minutes on a 2-vCPU VM; --quick in ~2."""
    if quick:
        return {"memory_n": 500, "memory_repeats": 2, "naive_seconds": 0.3, "disk_runs": 3, "compile_runs": 1,
                "http_n": 500, "http_warmup": 100, "http_rounds": 2, "http_disk_runs": 2, "http_compile_runs": 1,
                "deploy_runs": 1, "peer_n": 500, "peer_repeats": 2, "load_seconds": 1.5}
    return {"memory_n": 4000, "memory_repeats": 5, "naive_seconds": 2.0, "disk_runs": 15, "compile_runs": 5,
            "http_n": 3000, "http_warmup": 300, "http_rounds": 6, "http_disk_runs": 10, "http_compile_runs": 3,
            "deploy_runs": 3, "peer_n": 3000, "peer_repeats": 5, "load_seconds": 5.0}


def run_host(s: dict, progress: Callable[[str], None]) -> dict:
    return {"memory": tiers.memory_tier(WORKLOADS, int(s["memory_n"]), int(s["memory_repeats"]), progress),
            "restart": tiers.restart_tiers(WORKLOADS, int(s["disk_runs"]), int(s["compile_runs"]), progress),
            "naive": tiers.naive(WORKLOADS, s["naive_seconds"], progress)}


def run_http(s: dict, tmp: Path, progress: Callable[[str], None]) -> dict:
    from bench import peer_node

    node = peer_node.start_node_server if peer_node.node_version() else None
    if node is None:
        progress("http: Node.js 20 not found; its column stays empty")
    return {"latency": http_tiers.latency(tmp, WORKLOADS, node, int(s["http_n"]), int(s["http_warmup"]),
                                          int(s["http_rounds"]), progress),
            "restart": http_tiers.restart_tiers(tmp, WORKLOADS, int(s["http_disk_runs"]),
                                                int(s["http_compile_runs"]), progress),
            "deploy_to_first_response": http_tiers.deploy_to_first_response(tmp, WORKLOADS, int(s["deploy_runs"]),
                                                                             progress)}


def run_peers(s: dict, progress: Callable[[str], None]) -> dict:
    from bench import peer_extism, peer_node

    out: dict = {}
    version = peer_node.node_version()
    if version:
        # percall.mjs sends every module the same GET without a body: the workloads that take
        # a body (sha256) are compared over HTTP only, where both sides get the same request.
        handlers = {w.name: w.wasm for w in WORKLOADS if w.interface == "handler" and not w.body}
        progress(f"peers: Node.js {version}, fresh instance per call, {len(handlers)} modules")
        out["node"] = {"version": version,
                       "per_call": peer_node.node_per_call(handlers, int(s["peer_n"]), int(s["peer_repeats"]))}
    else:
        out["node"] = {"version": None, "skipped": "node 20+ not found"}
    version = peer_extism.extism_version()
    if version:
        progress(f"peers: Extism {version}, fresh plugin per call against Host.invoke")
        out["extism"] = {"version": version,
                         "per_call": peer_extism.extism_per_call(int(s["peer_n"]), int(s["peer_repeats"]))}
    else:
        out["extism"] = {"version": None, "skipped": "the extism package cannot be imported (pip install '.[bench]')"}
    return out


def run_load(s: dict, tmp: Path, client: str, progress: Callable[[str], None]) -> dict:
    from bench import load, peer_node

    extra = {}
    if peer_node.node_version():
        hello = next(w for w in WORKLOADS if w.name == "hello")
        extra["node"] = lambda t, workers: peer_node.start_node_server(t, {"hello": hello.wasm})
    return load.load_matrix(tmp, seconds=s["load_seconds"], extra_targets=extra, progress=progress, client=client)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (~2 minutes), figures less steady")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections of {SECTIONS}")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--no-readme", action="store_true", help="do not update bench/README.md")
    parser.add_argument("--load-client", choices=("auto", "wrk", "asyncio"), default="auto",
                        help="load generator: wrk (installed with apt if missing and root), the asyncio client, "
                             "or auto: wrk when it can be had (default)")
    args = parser.parse_args()
    only = [x for x in args.only.split(",") if x]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}")
    progress = Progress()
    s = sizes(args.quick)
    from modules.build import build_all

    build_all(ROOT / "modules" / "build")  # the WAT workloads
    missing = [str(w.wasm) for w in WORKLOADS if not w.wasm.exists()]
    if missing:
        print(f"missing modules: {missing} (run `make modules`)", file=sys.stderr)
        return 2
    stamp = datetime.now(UTC)
    result: dict = {"date": stamp.isoformat(timespec="seconds"), "machine": machine_info(), "quick": args.quick,
                    "sizes": s, "loadavg_before": os.getloadavg(),
                    "workloads": [{"name": w.name, "label": w.label, "bytes": w.size, "interface": w.interface,
                                   "method": w.method, "request_body_bytes": len(w.body)} for w in WORKLOADS],
                    "failed": {}}
    with tempfile.TemporaryDirectory(prefix="wasmhost-bench-") as tmpdir:
        tmp = Path(tmpdir)
        runners: dict[str, Callable[[], dict]] = {
            "host": lambda: run_host(s, progress),
            "http": lambda: run_http(s, tmp, progress),
            "peers": lambda: run_peers(s, progress),
            "load": lambda: run_load(s, tmp, args.load_client, progress),
        }
        for name in SECTIONS:
            if name not in only:
                continue
            progress(f"== {name}")
            try:
                result[name] = runners[name]()
            except Exception as exc:  # one broken section must not lose the others' figures
                traceback.print_exc()
                result["failed"][name] = f"{type(exc).__name__}: {exc}"
                progress(f"{name} FAILED: {exc}")
    result["elapsed_s"] = round(time.perf_counter() - progress.start, 1)
    result["loadavg_after"] = os.getloadavg()
    result["goals"] = report.goals(result)

    args.out_dir.mkdir(parents=True, exist_ok=True)
    base = args.out_dir / f"{stamp:%Y-%m-%d}-{platform.node() or 'host'}{'-quick' if args.quick else ''}"
    base.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    charts = report.charts(result, base)
    markdown = report.markdown(result, [c.name for c in charts])
    base.with_suffix(".md").write_text(markdown)
    if not args.quick and not args.no_readme and set(only) == set(SECTIONS):
        report.update_readme(ROOT / "bench" / "README.md", markdown, base.name)
    print()
    print(markdown)
    progress(f"wrote {base}.json, {base}.md and {len(charts)} charts")
    return 1 if result["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
