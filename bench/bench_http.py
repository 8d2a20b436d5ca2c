"""End-to-end latency of the hello function over HTTP, against a bare Starlette endpoint (issue: HTTP bench).

Starts, as real subprocesses on free loopback ports and with the same uvicorn settings
(uvloop, httptools through wasmhost's LimitedHttpToolsProtocol, 1 worker, access log off,
no server header, log level warning):
  wasmhost  `python -m wasmhost serve`, then deploys hello_handler as `hello` and
            hello_nolog as `hello-nolog` over the admin API;
  bare      `python -m uvicorn bench.bare_app:app`: one Starlette route answering the
            same bytes with the same content type at the same path (/fn/hello).

Sequential latency: one keep-alive connection per target, one request at a time, a
warm-up first, then N requests per target interleaved in rounds (the order alternates
each round) so the machine's noise hits every target alike. Every response's status,
content type and body are checked. wasmhost's Server-Timing header gives the host-side
components (queue, load, instantiate, run). Then a short concurrency-8 throughput figure
(threads, one connection each), with the client's and servers' CPU use to show which
side was the bottleneck.

Usage: python bench/bench_http.py [--quick] [--n N] [--client raw|http.client] [--out FILE]
Speed is reported as figures and ratios, never asserted: these machines are noisy.
"""

from __future__ import annotations

import argparse
import gc
import http.client
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (
    CONTENT_TYPE,
    HELLO,
    UVICORN_FLAGS,
    Proc,
    RawClient,
    deploy,
    machine_info,
    parse_server_timing,
    start_bare,
    start_wasmhost,
    summarize,
)
from bench.load import rate_result as _result
from bench.load import throughput_asyncio
from modules.build import build_all

# target name -> path (the bare app serves the same path as wasmhost's hello).
TARGETS = {"bare": "/fn/hello", "wasmhost hello": "/fn/hello", "wasmhost hello-nolog": "/fn/hello-nolog"}


class StdlibClient:
    """The same through http.client.HTTPConnection (more client overhead per request)."""

    def __init__(self, port: int, path: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port)
        self.path = path
        self.reconnects = 0

    def get(self) -> tuple[int, dict[str, str], bytes]:
        self.conn.request("GET", self.path)
        resp = self.conn.getresponse()
        return resp.status, resp.headers, resp.read()  # type: ignore[return-value]

    @staticmethod
    def parse(response):
        status, headers, body = response
        return status, {k.lower(): v for k, v in headers.items()}, body

    def close(self) -> None:
        self.conn.close()


CLIENTS = {"raw": RawClient, "http.client": StdlibClient}


# --------------------------------------------------------------------------- measurement

class Target:
    def __init__(self, name: str, port: int, path: str, client_cls) -> None:
        self.name, self.port, self.path = name, port, path
        self.client = client_cls(port, path)
        self.latencies_ns: list[int] = []
        self.errors: list[str] = []
        self.timings: list[dict[str, float | str]] = []
        self.head_bytes = 0

    def check(self, response, record_timing: bool) -> None:
        status, headers, body = self.client.parse(response)
        if status != 200 or body != HELLO or headers.get("content-type") != CONTENT_TYPE:
            if len(self.errors) < 20:
                self.errors.append(f"status {status}, content-type {headers.get('content-type')!r}, body {body[:80]!r}")
            else:
                self.errors.append("")
        if record_timing and "server-timing" in headers:
            self.timings.append(parse_server_timing(headers["server-timing"]))
        if isinstance(response[0], bytes):
            self.head_bytes = len(response[0])

    def run(self, n: int, record: bool) -> None:
        get, clock, lat = self.client.get, time.perf_counter_ns, self.latencies_ns
        responses = []
        for _ in range(n):
            t0 = clock()
            r = get()
            t1 = clock()
            if record:
                lat.append(t1 - t0)
            responses.append(r)
        for r in responses:  # checked after the timed loop, every one of them
            self.check(r, record)


def sequential(targets: list[Target], n: int, warmup: int, rounds: int) -> None:
    for t in targets:
        t.run(warmup, record=False)
    chunk = n // rounds
    gc.collect()
    gc.disable()  # the client's own collector pauses would land on whichever target is running
    try:
        for r in range(rounds):
            order = targets if r % 2 == 0 else targets[::-1]
            for t in order:
                t.run(chunk if r < rounds - 1 else n - chunk * (rounds - 1), record=True)
    finally:
        gc.enable()


def throughput_threads(port: int, path: str, concurrency: int, seconds: float, server: Proc) -> dict:
    """`concurrency` threads, each its own keep-alive connection, one request at a time."""
    clients = [RawClient(port, path) for _ in range(concurrency)]
    counts = [0] * concurrency
    errors = [0] * concurrency
    stop = threading.Event()
    start_barrier = threading.Barrier(concurrency + 1)

    def worker(i: int) -> None:
        c = clients[i]
        start_barrier.wait()
        while not stop.is_set():
            try:
                status, _, body = c.parse(c.get())
            except Exception:  # noqa: BLE001 - counted, and the figure is reported with it
                errors[i] += 1
                return
            counts[i] += 1
            if status != 200 or body != HELLO:
                errors[i] += 1

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for th in threads:
        th.start()
    cpu_client0, cpu_server0 = time.process_time(), server.cpu_seconds()
    start_barrier.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    cpu_client, cpu_server = time.process_time() - cpu_client0, server.cpu_seconds() - cpu_server0
    for c in clients:
        c.close()
    return _result(sum(counts), sum(errors), wall, cpu_client, cpu_server)


LOAD_CLIENTS = {"asyncio": throughput_asyncio, "threads": throughput_threads}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    parser.add_argument("--n", type=int, help="measured requests per target (default 5000; --quick 1000)")
    parser.add_argument("--warmup", type=int, default=500, help="warm-up requests per target (default 500)")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds (default 10)")
    parser.add_argument("--client", choices=sorted(CLIENTS), default="raw",
                        help="raw: pre-encoded request on a socket (default); http.client: the stdlib client")
    parser.add_argument("--concurrency", type=int, default=8, help="threads for the throughput figure (0: skip)")
    parser.add_argument("--load-client", choices=sorted(LOAD_CLIENTS), default="asyncio",
                        help="throughput client: asyncio (one uvloop thread, default) or threads (one per connection)")
    parser.add_argument("--seconds", type=float, help="seconds per throughput slot (default 3; --quick 1)")
    parser.add_argument("--out", type=Path, help="JSON results file (default bench/results/http-<date>-<host>.json)")
    args = parser.parse_args()
    n = args.n or (1000 if args.quick else 5000)
    seconds = args.seconds or (1.0 if args.quick else 3.0)
    tput_rounds = 1 if args.quick else 2
    client_cls = CLIENTS[args.client]
    started = time.perf_counter()
    load_before = os.getloadavg()

    servers: list[Proc] = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        try:
            built = build_all(tmp / "modules")
            wasmhost = start_wasmhost(tmp)
            servers.append(wasmhost)
            bare = start_bare(tmp)
            servers.append(bare)
            deploy(wasmhost.port, "hello", built["hello_handler"].read_bytes())
            deploy(wasmhost.port, "hello-nolog", built["hello_nolog"].read_bytes())
            ports = {"bare": bare.port, "wasmhost hello": wasmhost.port, "wasmhost hello-nolog": wasmhost.port}
            targets = [Target(name, ports[name], path, client_cls) for name, path in TARGETS.items()]

            print(f"sequential: {args.warmup} warm-up + {n} requests per target, {args.rounds} interleaved rounds, "
                  f"client {args.client} ...", flush=True)
            sequential(targets, n, args.warmup, args.rounds)
            for t in targets:
                t.client.close()

            tput: dict[str, dict] = {}
            if args.concurrency > 0:
                print(f"throughput: concurrency {args.concurrency} ({args.load_client} client), {seconds:g} s per "
                      f"target x {tput_rounds} ...", flush=True)
                load = LOAD_CLIENTS[args.load_client]
                runs: dict[str, list[dict]] = {name: [] for name in TARGETS}
                for r in range(tput_rounds):
                    order = list(TARGETS) if r % 2 == 0 else list(TARGETS)[::-1]
                    for name in order:
                        server = bare if name == "bare" else wasmhost
                        runs[name].append(load(ports[name], TARGETS[name], args.concurrency, seconds, server))
                for name, rs in runs.items():
                    best = max(rs, key=lambda x: x["rps"])
                    tput[name] = {"rps_runs": [x["rps"] for x in rs], "rps_median": round(statistics.median(
                        x["rps"] for x in rs), 1), "errors": sum(x["errors"] for x in rs), "runs": rs,
                        "client_cpu_fraction_best": best["client_cpu_fraction"],
                        "server_cpu_fraction_best": best["server_cpu_fraction"]}
        finally:
            for s in servers:
                s.stop()

    results: dict[str, dict] = {}
    for t in targets:
        entry = summarize(t.latencies_ns)
        entry.update({"errors": len(t.errors), "error_samples": [e for e in t.errors if e][:5],
                      "reconnects": t.client.reconnects, "response_head_bytes": t.head_bytes})
        if t.timings:
            comp = {}
            for key in ("queue", "load", "instantiate", "run"):
                vals = [float(x[key]) * 1e3 for x in t.timings if key in x]
                comp[f"{key}_us_median"] = round(statistics.median(vals), 1) if vals else None
            totals = sorted(sum(float(x.get(k, 0)) for k in ("queue", "load", "instantiate", "run")) * 1e3
                            for x in t.timings)
            comp["host_total_us_median"] = round(statistics.median(totals), 1)
            tiers: dict[str, int] = {}
            for x in t.timings:
                tiers[str(x.get("tier"))] = tiers.get(str(x.get("tier")), 0) + 1
            comp["tiers"] = tiers
            comp["outside_host_us_p50"] = round(entry["p50_us"] - comp["host_total_us_median"], 1)
            entry["server_timing"] = comp
        results[t.name] = entry
    bare_r = results["bare"]
    ratios = {}
    for name in ("wasmhost hello", "wasmhost hello-nolog"):
        ratios[name] = {"p50": round(results[name]["p50_us"] / bare_r["p50_us"], 2),
                        "p99": round(results[name]["p99_us"] / bare_r["p99_us"], 2),
                        "mean": round(results[name]["mean_us"] / bare_r["mean_us"], 2),
                        "p50_extra_us": round(results[name]["p50_us"] - bare_r["p50_us"], 1)}
    if tput:
        for name in ("wasmhost hello", "wasmhost hello-nolog"):
            ratios[name]["throughput"] = round(tput[name]["rps_median"] / tput["bare"]["rps_median"], 2)

    elapsed = time.perf_counter() - started
    report = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine_info(),
              "settings": {"n": n, "warmup": args.warmup, "rounds": args.rounds, "client": args.client,
                           "uvicorn": UVICORN_FLAGS, "concurrency": args.concurrency,
                           "load_client": args.load_client, "throughput_seconds": seconds,
                           "throughput_rounds": tput_rounds},
              "loadavg_before": load_before, "loadavg_after": os.getloadavg(), "elapsed_s": round(elapsed, 1),
              "sequential": results, "ratios_vs_bare": ratios, "throughput": tput,
              "goal": "p50(wasmhost hello) <= 1.3 x p50(bare)",
              "goal_met": ratios["wasmhost hello"]["p50"] <= 1.3}
    out = args.out or ROOT / "bench" / "results" / f"http-{datetime.now():%Y-%m-%d}-{platform.node() or 'host'}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")

    print("\n| target | p50 µs | p90 µs | p99 µs | mean µs | p50 / bare | p99 / bare | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        ratio = ratios.get(name, {"p50": 1.0, "p99": 1.0})
        print(f"| {name} | {r['p50_us']} | {r['p90_us']} | {r['p99_us']} | {r['mean_us']} | {ratio['p50']:.2f}× "
              f"| {ratio['p99']:.2f}× | {r['errors']} |")
    print("\nwasmhost Server-Timing, medians (µs):\n")
    print("| function | queue | load (tier) | instantiate | run | sum of the four | end-to-end p50 − that sum |")
    print("|---|---|---|---|---|---|---|")
    for name in ("wasmhost hello", "wasmhost hello-nolog"):
        st = results[name].get("server_timing")
        if st:
            print(f"| {name.split()[1]} | {st['queue_us_median']} | {st['load_us_median']} "
                  f"({', '.join(st['tiers'])}) | {st['instantiate_us_median']} | {st['run_us_median']} "
                  f"| {st['host_total_us_median']} | {st['outside_host_us_p50']} |")
    if tput:
        print(f"\nthroughput, concurrency {args.concurrency}, {args.load_client} client "
              f"(median of {tput_rounds} × {seconds:g} s; CPU in cores, of the best run):\n")
        print("| target | requests/s | / bare | errors | client CPU (cores) | server CPU (cores) |")
        print("|---|---|---|---|---|---|")
        for name, t in tput.items():
            ratio = ratios.get(name, {}).get("throughput", 1.0)
            print(f"| {name} | {t['rps_median']} | {ratio:.2f}× | {t['errors']} | {t['client_cpu_fraction_best']} "
                  f"| {t['server_cpu_fraction_best']} |")
    m = report["machine"]
    print(f"\nmachine: {m['node']}, {m['cpus']} CPUs ({m['cpu_model']}), Python {m['python']}; "
          f"load average before {load_before[0]:.2f}, after {report['loadavg_after'][0]:.2f}; {elapsed:.0f} s")
    goal = ratios["wasmhost hello"]["p50"]
    print(f"goal p50(wasmhost hello) ≤ 1.3 × p50(bare): {goal:.2f}× — {'met' if goal <= 1.3 else 'NOT met'}")
    total_errors = sum(r["errors"] for r in results.values()) + sum(t["errors"] for t in tput.values())
    if total_errors:
        print(f"ERRORS: {total_errors} bad responses; see {out}")
    print(f"results: {out}")
    return 1 if total_errors else 0


if __name__ == "__main__":
    sys.exit(main())
