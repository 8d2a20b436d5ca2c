"""Host-side cost of a call per cache tier, and the naive peer, for every workload.

memory   `Host.invoke` of a module already compiled in memory (fresh Store and instance per
         call), each call timed, plus the host's own Timings (load, instantiate, run).
disk     the first `Host.invoke` of each module in a new process whose data directory holds
         its artifact (process start and `Host()` are reported apart, not in the figure).
compile  the same with the artifacts deleted: what a host without a disk tier pays.
naive    wasmtime-py compiling the module on every request, WASI through files for the
         WAGI module: what WAGI did. Same process, same payloads.
baseline the plain wasmtime-py fresh-instance call of an already compiled module (its own
         Python API: Store, fuel, deadline, Linker.instantiate, exports): the "no wasmhost"
         reference for the memory tier.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import ROOT, pct
from bench.workloads import Workload

FIRST_CALLS = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from wasmhost.host import Host
from wasmhost.models import Request
from wasmhost.settings import Settings
calls = json.loads(sys.argv[3])
t0 = time.perf_counter()
host = Host(Settings(data_dir=Path(sys.argv[2])))
start_s = time.perf_counter() - t0
out = []
for name, method, body_len, content_type in calls:
    headers = (("content-type", content_type),) if content_type else ()
    request = Request(method=method, path="/", body=bytes(range(256)) * (body_len // 256), headers=headers,
                      script_name="/fn/" + name)
    t1 = time.perf_counter()
    inv = host.invoke(name, request)
    wall = time.perf_counter() - t1
    t = inv.timings
    out.append({"name": name, "ok": inv.ok, "error": repr(inv.error) if inv.error else None, "tier": inv.tier,
                "wall_s": wall, "load_s": t.load, "instantiate_s": t.instantiate, "run_s": t.run,
                "total_s": t.total, "status": inv.response.status if inv.response else None})
print(json.dumps({"host_start_s": start_s, "calls": out}))
"""


def request_for(w: Workload):  # -> wasmhost.models.Request (imported late: bench modules import cheaply)
    from wasmhost.models import Request

    headers = (("content-type", w.content_type),) if w.content_type else ()
    return Request(method=w.method, path="/", body=w.body, headers=headers, script_name=f"/fn/{w.name}")


def stats_us(values_s: list[float]) -> dict[str, float]:
    """Median, p90, p99 (nearest rank), min and count, in µs."""
    us = sorted(v * 1e6 for v in values_s)
    return {"n": len(us), "p50_us": round(pct(us, 50), 2), "p90_us": round(pct(us, 90), 2),
            "p99_us": round(pct(us, 99), 2), "min_us": round(us[0], 2)}


def memory_tier(workloads: list[Workload], n: int, repeats: int, progress: Callable[[str], None]) -> dict:
    """Each call timed on its own; `repeats` rounds of `n` calls per workload, workloads interleaved."""
    from wasmhost.host import Host
    from wasmhost.settings import Settings

    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp, Host(Settings(data_dir=Path(tmp))) as host:
        requests = {w.name: request_for(w) for w in workloads}
        for w in workloads:
            host.deploy(w.name, w.wasm.read_bytes())
            inv = host.invoke(w.name, requests[w.name])
            if not inv.ok or w.check(inv.response.status, inv.response.body):
                raise RuntimeError(f"{w.name}: wrong answer in process: {inv.error or w.check(inv.response.status, inv.response.body)}")
        wall: dict[str, list[float]] = {w.name: [] for w in workloads}
        parts: dict[str, dict[str, list[float]]] = {w.name: {"load": [], "instantiate": [], "run": [], "total": []}
                                                     for w in workloads}
        round_medians: dict[str, list[float]] = {w.name: [] for w in workloads}
        clock = time.perf_counter
        for r in range(repeats):
            order = workloads if r % 2 == 0 else workloads[::-1]
            for w in order:
                invoke, request, name = host.invoke, requests[w.name], w.name
                count = n if w.name != "sha256" else max(50, n // 20)  # ~1 ms per call: keep its share of time
                if r == 0:
                    for _ in range(min(count, 500)):
                        invoke(name, request)
                times, invs = [], []
                for _ in range(count):
                    t0 = clock()
                    inv = invoke(name, request)
                    times.append(clock() - t0)
                    invs.append(inv)
                bad = [i for i in invs if not i.ok or i.tier != "memory"]
                if bad:
                    raise RuntimeError(f"{name}: {len(bad)} calls failed or left the memory tier: {bad[0]}")
                wall[name] += times
                round_medians[name].append(statistics.median(times) * 1e6)
                p = parts[name]
                for inv in invs:
                    t = inv.timings
                    p["load"].append(t.load)
                    p["instantiate"].append(t.instantiate)
                    p["run"].append(t.run)
                    p["total"].append(t.total)
            progress(f"memory tier: round {r + 1}/{repeats}")
        for w in workloads:
            out[w.name] = {"wall": stats_us(wall[w.name]),
                           "round_medians_us": [round(x, 2) for x in round_medians[w.name]],
                           "host_reported_median_us": {k: round(statistics.median(v) * 1e6, 2)
                                                       for k, v in parts[w.name].items()},
                           "path": host.sandbox.path}
        hello = next(w for w in workloads if w.name == "hello")
        out["_baseline_wasmtime_py"] = baseline(host.wasm.engine, hello, n, repeats)
    return out


def baseline(engine, w: Workload, n: int, repeats: int) -> dict:
    """The plain wasmtime-py fresh-instance call of an already compiled handler module."""
    import wasmtime

    from wasmhost.abi.handler_codec import encode_request_py as encode_request

    module = wasmtime.Module(engine, w.wasm.read_bytes())
    linker = wasmtime.Linker(engine)
    lines: list[int] = []
    linker.define_func("wasmhost", "log", wasmtime.FuncType([wasmtime.ValType.i32(), wasmtime.ValType.i32()], []),
                       lambda ptr, length: lines.append(length))
    body = encode_request(request_for(w), {})

    def call() -> bytes:
        store = wasmtime.Store(engine)
        store.set_fuel(1_000_000_000)
        store.set_epoch_deadline(1000)
        store.set_limits(memory_size=64 << 20)
        exports = linker.instantiate(store, module).exports(store)
        ptr = exports["wasmhost_alloc"](store, len(body))
        memory = exports["memory"]
        memory.write(store, body, ptr)
        packed = exports["wasmhost_handle"](store, ptr, len(body))
        return bytes(memory.read(store, packed >> 32, (packed >> 32) + (packed & 0xFFFFFFFF)))

    for _ in range(min(n, 500)):
        call()
    times: list[float] = []
    for _ in range(repeats):
        for _ in range(n):
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
    return {"module": w.name, "wall": stats_us(times)}


def naive_call(engine, w: Workload, tmp: Path) -> bytes:
    """Compile, link, instantiate, run: everything from the bytes, once per request (WAGI's way)."""
    import wasmtime

    from wasmhost.abi.handler_codec import encode_request_py as encode_request

    module = wasmtime.Module(engine, w.wasm.read_bytes())
    linker = wasmtime.Linker(engine)
    store = wasmtime.Store(engine)
    if w.interface == "wagi":
        linker.define_wasi()
        stdin, stdout = tmp / "stdin", tmp / "stdout"
        stdin.write_bytes(w.body)
        wasi = wasmtime.WasiConfig()
        wasi.argv = ["/"]
        wasi.env = [("REQUEST_METHOD", w.method), ("PATH_INFO", "/"), ("SCRIPT_NAME", f"/fn/{w.name}"),
                    ("QUERY_STRING", ""), ("CONTENT_LENGTH", str(len(w.body))), ("SERVER_PROTOCOL", "HTTP/1.1")]
        wasi.stdin_file = str(stdin)
        wasi.stdout_file = str(stdout)
        store.set_wasi(wasi)
        try:
            linker.instantiate(store, module).exports(store)["_start"](store)
        except wasmtime.ExitTrap as exc:
            if exc.code != 0:
                raise
        return stdout.read_bytes()
    linker.define_func("wasmhost", "log", wasmtime.FuncType([wasmtime.ValType.i32(), wasmtime.ValType.i32()], []),
                       lambda ptr, length: None)
    exports = linker.instantiate(store, module).exports(store)
    body = encode_request(request_for(w), {})
    ptr = exports["wasmhost_alloc"](store, len(body))
    exports["memory"].write(store, body, ptr)
    packed = exports["wasmhost_handle"](store, ptr, len(body))
    return bytes(exports["memory"].read(store, packed >> 32, (packed >> 32) + (packed & 0xFFFFFFFF)))


def naive(workloads: list[Workload], seconds_each: float, progress: Callable[[str], None]) -> dict:
    """As many compile-per-request calls as fit in `seconds_each` (at least 3) per workload."""
    import wasmtime

    engine = wasmtime.Engine()
    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for w in workloads:
            answer = naive_call(engine, w, tmp)
            expect = w.expect_prefix
            if expect not in answer:  # handler answers are msgpack, WAGI's are CGI: the body is inside
                raise RuntimeError(f"naive {w.name}: answer {answer[:120]!r} lacks {expect[:40]!r}")
            times: list[float] = []
            deadline = time.perf_counter() + seconds_each
            while len(times) < 3 or (time.perf_counter() < deadline and len(times) < 200):
                t0 = time.perf_counter()
                naive_call(engine, w, tmp)
                times.append(time.perf_counter() - t0)
            out[w.name] = {"wall": stats_us(times)}
            progress(f"naive (compile per request): {w.name} {statistics.median(times) * 1e3:.2f} ms")
    return out


def first_calls(data_dir: Path, workloads: list[Workload]) -> dict:
    """A new process: Host() on `data_dir`, then the first call of every workload, in the given order."""
    calls = [[w.name, w.method, len(w.body), w.content_type] for w in workloads]
    done = subprocess.run([sys.executable, "-c", FIRST_CALLS, str(ROOT), str(data_dir), json.dumps(calls)],
                          check=False, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONHASHSEED": "0"})
    if done.returncode != 0:
        raise RuntimeError(f"first-call process failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def restart_tiers(workloads: list[Workload], disk_runs: int, compile_runs: int,
                  progress: Callable[[str], None]) -> dict:
    """First call per module after a restart, with the artifacts on disk and without them.

    The order of the modules rotates between processes, so no module is always the first
    call a process makes."""
    from wasmhost.host import Host
    from wasmhost.settings import Settings

    samples: dict[str, dict[str, list[dict]]] = {w.name: {"disk": [], "compile": []} for w in workloads}
    host_start: list[float] = []
    deploy_compile_ms: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmpdir:
        data = Path(tmpdir) / "data"
        with Host(Settings(data_dir=data)) as host:
            for w in workloads:
                deploy_compile_ms[w.name] = round(host.deploy(w.name, w.wasm.read_bytes()).compile_seconds * 1e3, 2)
        artifacts, saved = data / "artifacts", Path(tmpdir) / "artifacts.saved"
        shutil.copytree(artifacts, saved)
        for kind, runs in (("disk", disk_runs), ("compile", compile_runs)):
            for i in range(runs):
                if kind == "compile":
                    shutil.rmtree(artifacts)
                    shutil.copytree(saved, artifacts)
                    for f in artifacts.rglob("*.cwasm"):
                        f.unlink()
                order = workloads[i % len(workloads):] + workloads[:i % len(workloads)]
                result = first_calls(data, order)
                host_start.append(result["host_start_s"])
                for call in result["calls"]:
                    if not call["ok"] or call["tier"] != kind:
                        raise RuntimeError(f"{kind} run {i}: {call}")
                    samples[call["name"]][kind].append(call)
                progress(f"restart tiers: {kind} process {i + 1}/{runs}")
    out: dict[str, dict] = {"_host_start_ms_median": round(statistics.median(host_start) * 1e3, 1),
                            "_deploy_compile_ms": deploy_compile_ms}
    for w in workloads:
        entry: dict[str, dict] = {}
        for kind in ("disk", "compile"):
            calls = samples[w.name][kind]
            entry[kind] = {"wall": stats_us([c["wall_s"] for c in calls]),
                           "host_total": stats_us([c["total_s"] for c in calls]),
                           "host_load": stats_us([c["load_s"] for c in calls]),
                           # what the host adds before the guest runs: the cold start proper
                           "host_overhead": stats_us([c["load_s"] + c["instantiate_s"] for c in calls]),
                           "guest_run": stats_us([c["run_s"] for c in calls])}
        # Both tiers then run the same guest code; the ratio of what each pays to get the code
        # ready is the cache's gain, the ratio of the whole first calls what a caller sees.
        entry["compile_over_disk"] = round(entry["compile"]["host_load"]["p50_us"]
                                           / entry["disk"]["host_load"]["p50_us"], 1)
        entry["compile_over_disk_first_call"] = round(entry["compile"]["host_total"]["p50_us"]
                                                      / entry["disk"]["host_total"]["p50_us"], 1)
        out[w.name] = entry
    return out
