"""Throughput and tail latency under concurrent load, and RSS per worker process (issue: load bench).

For each worker count and concurrency: the floor (bench/bare_app.py under the same uvicorn settings),
wasmhost serving `hello`, and any extra target, each loaded for `seconds` by wrk (Debian's package)
whose Lua `done()` prints one JSON summary line; the asyncio client below when wrk cannot be had.
On this 2-core machine the load generator competes with the server for CPU, so every run records
both sides' CPU in cores: the side near the machine's total is the bottleneck.

Usage: python bench/load.py [--seconds S] [--quick] [--client auto|wrk|asyncio] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import (
    HELLO,
    UVICORN_FLAGS,
    Proc,
    deploy,
    machine_info,
    pct,
    start_bare,
    start_wasmhost,
)

PATH = "/fn/hello"
HELLO_WASM = ROOT / "modules" / "build" / "hello_handler.wasm"
ERROR_KINDS = ("connect", "read", "write", "status", "timeout")
WARMUP = {"concurrency": 8, "seconds": 1.0}  # fills every worker's caches before RSS at rest is read
MIB = 1024 * 1024

# Non-2xx and wrong bodies are counted in each wrk thread's Lua state; done() sums them over threads.
WRK_LUA = r"""
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) non2xx = 0; wrong_body = 0 end
function response(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
  if body ~= "Hello, world!\n" then wrong_body = wrong_body + 1 end
end
function done(summary, latency, requests)
  local n, w = 0, 0
  for _, t in ipairs(threads) do n = n + t:get("non2xx"); w = w + t:get("wrong_body") end
  local e = summary.errors
  io.write(string.format('{"requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d},"non_2xx":%d,"wrong_body":%d,"latency_us":{"p50":%.0f,"p90":%.0f,' ..
    '"p99":%.0f,"p99_9":%.0f,"max":%.0f}}\n', summary.requests, summary.duration, e.connect, e.read,
    e.write, e.status, e.timeout, n, w, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max))
end
"""


class CpuSource(Protocol):
    def cpu_seconds(self) -> float: ...


# --------------------------------------------------------------------------- asyncio fallback client

def rate_result(total: int, errors: int, wall: float, cpu_client: float, cpu_server: float) -> dict:
    """The figures bench_http.py reports for one throughput run."""
    return {"requests": total, "errors": errors, "seconds": round(wall, 3), "rps": round(total / wall, 1),
            "client_cpu_fraction": round(cpu_client / wall, 3), "server_cpu_fraction": round(cpu_server / wall, 3),
            "client_cpu_us_per_request": round(cpu_client / max(total, 1) * 1e6, 1),
            "server_cpu_us_per_request": round(cpu_server / max(total, 1) * 1e6, 1)}


class _LoadProtocol(asyncio.Protocol):
    """One keep-alive connection of the asyncio load client: sends the next request as soon as the
    previous response is complete, timing each; checks status and body; stops when `state["stop"]`."""

    def __init__(self, request: bytes, state: dict, done: asyncio.Future) -> None:
        self.request, self.state, self.done = request, state, done
        self.buf, self.sent = b"", 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def start(self) -> None:
        self.sent = time.perf_counter_ns()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        buf, state = self.buf + data, self.state
        while (end := buf.find(b"\r\n\r\n")) >= 0:
            head = buf[:end]
            at = head.lower().find(b"\r\ncontent-length:")
            if at < 0:  # every answer here has a Content-Length; without one the connection is given up
                self.transport.close()
                break
            line_end = head.find(b"\r\n", at + 2)
            need = end + 4 + int(head[at + 17:line_end if line_end > 0 else len(head)])
            if len(buf) < need:
                break
            now, wrong_body = time.perf_counter_ns(), buf[end + 4:need] != HELLO
            state["non_2xx"] += not head.startswith(b"HTTP/1.1 2")
            state["wrong_body"] += wrong_body
            state["errors"] += wrong_body or not head.startswith(b"HTTP/1.1 200 ")
            buf = buf[need:]
            if state["stop"]:
                if not self.done.done():
                    self.done.set_result(None)
                break
            state["count"] += 1
            state["latencies_ns"].append(now - self.sent)
            self.start()
        self.buf = buf

    def connection_lost(self, exc) -> None:
        if not self.done.done():
            self.state["errors"] += 1
            self.state["lost"] += 1
            self.done.set_result(None)


def throughput_asyncio(port: int, path: str, concurrency: int, seconds: float, server: CpuSource) -> dict:
    """`concurrency` keep-alive connections driven by one uvloop thread (low client overhead); adds
    non_2xx, wrong_body, lost connections and latency percentiles (µs, None if no response) to `rate_result`."""
    import uvloop

    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: bench-http\r\n"
               "Accept: */*\r\n\r\n").encode()

    async def run() -> dict:
        loop = asyncio.get_running_loop()
        state = {"count": 0, "errors": 0, "non_2xx": 0, "wrong_body": 0, "lost": 0, "stop": False, "latencies_ns": []}
        conns = []
        for _ in range(concurrency):
            done = loop.create_future()
            transport, proto = await loop.create_connection(lambda d=done: _LoadProtocol(request, state, d),
                                                            "127.0.0.1", port)
            transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conns.append((transport, proto, done))
        cpu_client0, cpu_server0 = time.process_time(), server.cpu_seconds()
        t0 = time.perf_counter()
        for _, proto, _ in conns:
            proto.start()
        await asyncio.sleep(seconds)
        state["stop"] = True
        wall = time.perf_counter() - t0
        cpu_client, cpu_server = time.process_time() - cpu_client0, server.cpu_seconds() - cpu_server0
        await asyncio.wait_for(asyncio.gather(*(d for _, _, d in conns)), 30)
        for transport, _, _ in conns:
            transport.close()
        us = sorted(v / 1e3 for v in state["latencies_ns"])
        latency = {k: round(pct(us, p), 1) for k, p in (("p50", 50), ("p90", 90), ("p99", 99), ("p99_9", 99.9))}
        return {**rate_result(state["count"], state["errors"], wall, cpu_client, cpu_server),
                **{k: state[k] for k in ("non_2xx", "wrong_body", "lost")},
                "latency_us": {**latency, "max": round(us[-1], 1)} if us else None}

    return uvloop.run(run())


# --------------------------------------------------------------------------- wrk, processes

def ensure_wrk() -> str | None:
    """wrk's path, installed from Debian when missing and we are root; None when that cannot be."""
    if path := shutil.which("wrk"):
        return path
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "wrk"]
    try:
        if subprocess.run(install, env=env, capture_output=True, timeout=600, check=False).returncode != 0:
            # the package lists may be missing or stale: refresh them and try once more
            subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=600, check=False)
            subprocess.run(install, env=env, capture_output=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return shutil.which("wrk")


class ServerTree:
    """A server's processes: CPU summed over the master and all its descendants; RSS per worker.
    uvicorn --workers N runs N spawned children (and maybe multiprocessing's resource tracker, not a
    worker); with one worker, or for a server without children, the master is the worker."""

    def __init__(self, proc: Proc) -> None:
        self.master = psutil.Process(proc.proc.pid)
        kids = [c for c in self.master.children() if "resource_tracker" not in " ".join(c.cmdline())]
        self.workers = kids or [self.master]

    def cpu_seconds(self) -> float:
        total = 0.0
        for p in (self.master, *self.master.children(recursive=True)):
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def rss_mib(self) -> list[float]:
        return [round(p.memory_info().rss / MIB, 1) for p in self.workers]


class RssSampler(threading.Thread):
    """Max RSS of each worker process, sampled every ~100 ms while a load runs."""

    def __init__(self, tree: ServerTree) -> None:
        super().__init__(daemon=True)
        self.tree, self.halt, self.peak = tree, threading.Event(), [0.0] * len(tree.workers)

    def run(self) -> None:
        while True:
            try:
                self.peak = [max(a, b) for a, b in zip(self.peak, self.tree.rss_mib())]
            except psutil.Error:
                pass
            if self.halt.wait(0.1):
                return

    def stop(self) -> list[float]:
        self.halt.set()
        self.join()
        return self.peak


def run_wrk(wrk: str, lua: Path, port: int, concurrency: int, seconds: float) -> tuple[dict, float]:
    """wrk's JSON summary and its CPU seconds (the reaped child's rusage: exact, all its threads)."""
    argv = [wrk, "-t", str(min(2, concurrency)), "-c", str(concurrency), "-d", f"{max(1, round(seconds))}s",
            "-s", str(lua), f"http://127.0.0.1:{port}{PATH}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return json.loads(lines[-1]), cpu


def machine_busy() -> float:
    """CPU seconds the whole machine spent not idle: what neither side used is other sessions' work."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def measure(wrk: str | None, lua: Path, port: int, tree: ServerTree, concurrency: int, seconds: float) -> dict:
    """One load run against one server: throughput, latency, errors, both sides' CPU, peak RSS."""
    sampler = RssSampler(tree)
    sampler.start()
    busy0 = machine_busy()
    try:
        if wrk:
            cpu0 = tree.cpu_seconds()
            w, client_cpu = run_wrk(wrk, lua, port, concurrency, seconds)
            wall = w["duration_us"] / 1e6
            server_cpu = tree.cpu_seconds() - cpu0
            requests, errors, non_2xx, wrong_body = w["requests"], w["errors"], w["non_2xx"], w["wrong_body"]
            latency = w["latency_us"] if requests else None
        else:
            a = throughput_asyncio(port, PATH, concurrency, seconds, tree)
            wall, requests, non_2xx = a["seconds"], a["requests"], a["non_2xx"]
            client_cpu, server_cpu = a["client_cpu_fraction"] * wall, a["server_cpu_fraction"] * wall
            errors = {k: 0 for k in ERROR_KINDS} | {"read": a["lost"], "status": non_2xx}
            wrong_body, latency = a["wrong_body"], a["latency_us"]
    finally:
        rss = sampler.stop()
    busy = machine_busy() - busy0
    return {"rps": round(requests / wall, 1), "requests": requests, "seconds": round(wall, 3),
            "latency_us": latency, "errors": errors, "errors_total": sum(errors.values()), "non_2xx": non_2xx,
            "wrong_body": wrong_body, "client_cpu_cores": round(client_cpu / wall, 2),
            "server_cpu_cores": round(server_cpu / wall, 2), "machine_cpu_cores": round(busy / wall, 2),
            "rss_load_mib": rss}


def check_hello(port: int) -> None:
    """One GET before any load: a target that answers wrongly would make every figure meaningless."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", PATH)
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    if resp.status != 200 or body != HELLO:
        raise RuntimeError(f"{PATH} on port {port}: HTTP {resp.status}, body {body[:200]!r}")


def hello_wasm() -> bytes:
    if not HELLO_WASM.exists():
        subprocess.run([sys.executable, str(ROOT / "modules" / "build.py")], check=True, cwd=ROOT)
    return HELLO_WASM.read_bytes()


# --------------------------------------------------------------------------- the matrix

def load_matrix(tmp: Path, concurrencies: tuple[int, ...] = (1, 8, 32, 128), workers: tuple[int, ...] = (1, 2),
                seconds: float = 5.0, extra_targets: dict[str, Callable[[Path, int], Proc]] | None = None,
                progress: Callable[[str], None] = print, client: str = "auto") -> dict:
    """Every (target, workers, concurrency) run, RSS per worker at rest and under load, ratios to the
    floor. `client`: auto (wrk, installed if need be, else asyncio), wrk, or asyncio."""
    started, load_before = time.perf_counter(), os.getloadavg()
    wrk = ensure_wrk() if client in ("auto", "wrk") else None
    if client == "wrk" and wrk is None:
        raise RuntimeError("wrk is not installed and cannot be installed here")
    lua = tmp / "load.lua"
    lua.write_text(WRK_LUA)
    wasm = hello_wasm()
    results: dict[str, dict] = {}
    rounds = 0
    for w in workers:
        starters: dict[str, Callable[[], Proc]] = {
            "floor": lambda w=w: start_bare(tmp, workers=w),
            "wasmhost": lambda w=w: start_wasmhost(tmp, workers=w, data=tmp / f"data-w{w}")}
        if w == 1:  # peers are measured with one worker only
            starters |= {name: (lambda s=start: s(tmp, 1)) for name, start in (extra_targets or {}).items()}
        servers: dict[str, tuple[Proc, ServerTree]] = {}
        try:
            for name, start in starters.items():
                proc = start()
                servers[name] = (proc, ServerTree(proc))
                if name == "wasmhost":
                    deploy(proc.port, "hello", wasm)
                check_hello(proc.port)
                measure(wrk, lua, proc.port, servers[name][1], WARMUP["concurrency"], WARMUP["seconds"])
                time.sleep(0.3)
                servers[name] = (proc, tree := ServerTree(proc))  # every worker is up by now
                results.setdefault(name, {})[str(w)] = {
                    "rss_rest_mib": tree.rss_mib(), "rss_load_mib": [0.0] * len(tree.workers),
                    "rss_master_mib": round(tree.master.memory_info().rss / MIB, 1)
                    if tree.workers != [tree.master] else None, "by_concurrency": {}}
            for c in concurrencies:
                order = list(servers) if rounds % 2 == 0 else list(servers)[::-1]  # spread drift alike
                rounds += 1
                for name in order:
                    proc, tree = servers[name]
                    r = measure(wrk, lua, proc.port, tree, c, seconds)
                    entry = results[name][str(w)]
                    entry["by_concurrency"][str(c)] = r
                    entry["rss_load_mib"] = [max(a, b) for a, b in zip(entry["rss_load_mib"], r["rss_load_mib"])]
                    lat = r["latency_us"] or {}
                    progress(f"{name:>10} w{w} c{c:<4} {r['rps']:>9.1f} req/s  p50 {lat.get('p50')} µs  "
                             f"p99 {lat.get('p99')} µs  errors {r['errors_total']}  non-2xx {r['non_2xx']}  "
                             f"CPU client {r['client_cpu_cores']} server {r['server_cpu_cores']}")
        finally:
            for proc, _ in servers.values():
                proc.stop()
    ratios: dict[str, dict] = {}
    for name, by_w in results.items():
        for w, entry in by_w.items():
            for c, r in entry["by_concurrency"].items() if name != "floor" else ():
                f = results["floor"].get(w, {}).get("by_concurrency", {}).get(c)
                if f and r["latency_us"] and f["latency_us"]:
                    ratios.setdefault(name, {}).setdefault(w, {})[c] = {
                        "rps": round(r["rps"] / f["rps"], 3),
                        "p50": round(r["latency_us"]["p50"] / f["latency_us"]["p50"], 3),
                        "p99": round(r["latency_us"]["p99"] / f["latency_us"]["p99"], 3)}
    return {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine_info(),
            "settings": {"concurrencies": list(concurrencies), "workers": list(workers), "seconds": seconds,
                         "client": "wrk" if wrk else "asyncio", "client_threads": "min(2, concurrency)",
                         "path": PATH, "uvicorn": UVICORN_FLAGS, "warmup": WARMUP},
            "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
            "elapsed_s": round(time.perf_counter() - started, 1), "results": results, "ratios_vs_floor": ratios}


def markdown(report: dict) -> str:
    def ms(lat: dict | None, key: str) -> str:
        return f"{lat[key] / 1e3:.2f}" if lat else "—"

    rows = [("| target | workers | conc. | req/s | ×floor | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms "
             "| p99 ×floor | errors | non-2xx | client CPU | server CPU | machine CPU |"), "|---" * 16 + "|"]
    mem = ["| target | workers | RSS at rest, MiB per worker | RSS under load (peak), MiB per worker | master MiB |",
           "|---|---|---|---|---|"]
    for name, by_w in report["results"].items():
        for w, e in by_w.items():
            mem.append(f"| {name} | {w} | {', '.join(map(str, e['rss_rest_mib']))} "
                       f"| {', '.join(map(str, e['rss_load_mib']))} | {e['rss_master_mib'] or '—'} |")
            for c, r in e["by_concurrency"].items():
                q, lat = report["ratios_vs_floor"].get(name, {}).get(w, {}).get(c), r["latency_us"]
                x_rps, x_p99 = (f"{q['rps']:.2f}×", f"{q['p99']:.2f}×") if q else ("—", "—")
                rows.append(f"| {name} | {w} | {c} | {r['rps']:.0f} | {x_rps} "
                            f"| {ms(lat, 'p50')} | {ms(lat, 'p90')} | {ms(lat, 'p99')} | {ms(lat, 'p99_9')} "
                            f"| {ms(lat, 'max')} | {x_p99} | {r['errors_total']} "
                            f"| {r['non_2xx']} | {r['client_cpu_cores']} | {r['server_cpu_cores']} | {r['machine_cpu_cores']} |")
    return "\n".join(rows) + "\n\n" + "\n".join(mem)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, help="seconds per run (default 5; --quick 1)")
    parser.add_argument("--quick", action="store_true", help="1-second runs (a smoke run)")
    parser.add_argument("--client", choices=("auto", "wrk", "asyncio"), default="auto")
    parser.add_argument("--out", type=Path, help="JSON results file (default bench/results/load-<date>-<host>.json)")
    args = parser.parse_args()
    seconds = args.seconds or (1.0 if args.quick else 5.0)
    with tempfile.TemporaryDirectory() as tmpdir:
        report = load_matrix(Path(tmpdir), seconds=seconds, client=args.client)
    out = args.out or ROOT / "bench" / "results" / f"load-{datetime.now():%Y-%m-%d}-{platform.node() or 'host'}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    m = report["machine"]
    print(f"\n{report['settings']['client']}, {seconds:g} s per run; CPU in cores (client = the load generator, "
          f"server = master + workers)\n\n{markdown(report)}\n\nmachine: {m['node']}, {m['cpus']} CPUs "
          f"({m['cpu_model']}); load average before {report['loadavg_before'][0]:.2f}, after "
          f"{report['loadavg_after'][0]:.2f}; {report['elapsed_s']:.0f} s\nresults: {out}")
    bad = sum(r["errors_total"] + r["non_2xx"] + r["wrong_body"] for by_w in report["results"].values()
              for e in by_w.values() for r in e["by_concurrency"].values())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
