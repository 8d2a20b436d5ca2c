"""The client's view over loopback HTTP: latency per workload against the floor and the peers,
first response after a restart (disk and compile tiers), and deploy-to-first-response.

Every server is a real subprocess on a free loopback port; the client is `RawClient` (a
pre-encoded request on a TCP_NODELAY keep-alive socket), so its own cost per request is a
few µs. Every answer is checked after the timed loop.
"""

from __future__ import annotations

import gc
import http.client
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import (
    HELLO,
    Proc,
    RawClient,
    deploy,
    parse_server_timing,
    start_bare,
    start_wasmhost,
    summarize,
)
from bench.workloads import Workload


class Target:
    """One URL on one server, its latencies and what went wrong."""

    def __init__(self, label: str, port: int, path: str, check: Callable[[int, bytes], str | None],
                 method: str = "GET", body: bytes = b"", content_type: str = "") -> None:
        self.label, self.check = label, check
        self.client = RawClient(port, path, method, body, content_type)
        self.latencies_ns: list[int] = []
        self.errors: list[str] = []
        self.timings: list[dict[str, float | str]] = []

    def run(self, n: int, record: bool) -> None:
        get, clock = self.client.get, time.perf_counter_ns
        responses, lat = [], []
        for _ in range(n):
            t0 = clock()
            r = get()
            lat.append(clock() - t0)
            responses.append(r)
        if record:
            self.latencies_ns += lat
        for r in responses:
            status, headers, body = RawClient.parse(r)
            problem = self.check(status, body)
            if problem:
                self.errors.append(problem)
            if record and "server-timing" in headers:
                self.timings.append(parse_server_timing(headers["server-timing"]))

    def result(self) -> dict:
        out: dict = {**summarize(self.latencies_ns), "errors": len(self.errors), "error_samples": self.errors[:3]}
        if self.timings:
            out["server_timing_median_us"] = {
                key: round(statistics.median(float(t[key]) for t in self.timings if key in t) * 1e3, 1)
                for key in ("queue", "load", "instantiate", "run") if any(key in t for t in self.timings)}
        return out


def check_hello(status: int, body: bytes) -> str | None:
    return None if status == 200 and body == HELLO else f"status {status}, body {body[:80]!r}"


def interleaved(targets: list[Target], n: int, warmup: int, rounds: int) -> None:
    """Warm up, then `rounds` rounds of n/rounds requests per target, the order reversing each round."""
    for t in targets:
        t.run(warmup, record=False)
    gc.collect()
    gc.disable()  # the client's collector pauses would land on whichever target runs then
    try:
        for r in range(rounds):
            for t in targets if r % 2 == 0 else targets[::-1]:
                t.run(max(1, n // rounds), record=True)
    finally:
        gc.enable()


def latency(tmp: Path, workloads: list[Workload], node: Callable[[Path, dict[str, Path]], Proc] | None,
            n: int, warmup: int, rounds: int, progress: Callable[[str], None]) -> dict:
    """Sequential requests (one keep-alive connection per target): the floor, wasmhost for every
    workload, and the Node.js peer for every handler workload, all interleaved."""
    servers: list[Proc] = []
    try:
        bare = start_bare(tmp)
        servers.append(bare)
        host = start_wasmhost(tmp, data=tmp / "latency-data")
        servers.append(host)
        for w in workloads:
            deploy(host.port, w.name, w.wasm.read_bytes())
        targets = [Target("floor", bare.port, "/fn/hello", check_hello)]
        for w in workloads:
            targets.append(Target(f"wasmhost {w.name}", host.port, f"/fn/{w.name}", w.check, w.method, w.body,
                                  w.content_type))
        node_handlers = [w for w in workloads if w.interface == "handler"]
        if node is not None:
            peer = node(tmp, {w.name: w.wasm for w in node_handlers})
            servers.append(peer)
            for w in node_handlers:
                targets.append(Target(f"node {w.name}", peer.port, f"/fn/{w.name}", w.check, w.method, w.body,
                                      w.content_type))
        progress(f"http latency: {len(targets)} targets, {warmup} warm-up + {n} requests each, {rounds} rounds")
        interleaved(targets, n, warmup, rounds)
        for t in targets:
            t.client.close()
        return {t.label: t.result() for t in targets}
    finally:
        for s in servers:
            s.stop()


def first_response(port: int, w: Workload) -> dict:
    """Connect, then time one request: the client's view of the first call of a module."""
    client = RawClient(port, f"/fn/{w.name}", w.method, w.body, w.content_type)
    t0 = time.perf_counter_ns()
    raw = client.get()
    elapsed = time.perf_counter_ns() - t0
    client.close()
    status, headers, body = RawClient.parse(raw)
    problem = w.check(status, body)
    if problem:
        raise RuntimeError(f"first response of {w.name}: {problem}")
    timing = parse_server_timing(headers.get("server-timing", ""))
    host_us = sum(float(timing.get(k, 0.0)) for k in ("queue", "load", "instantiate", "run")) * 1e3
    return {"client_us": elapsed / 1e3, "tier": timing.get("tier"), "host_us": host_us,
            "load_us": float(timing.get("load", 0.0)) * 1e3}


def restart_tiers(tmp: Path, workloads: list[Workload], disk_runs: int, compile_runs: int,
                  progress: Callable[[str], None]) -> dict:
    """Restart the server on the same data; the first request to each module is its disk-tier call
    (compile tier: the artifacts deleted before the start). The module order rotates."""
    data = tmp / "restart-data"
    host = start_wasmhost(tmp, data=data)
    try:
        for w in workloads:
            deploy(host.port, w.name, w.wasm.read_bytes())
    finally:
        host.stop()
    samples: dict[str, dict[str, list[dict]]] = {w.name: {"disk": [], "compile": []} for w in workloads}
    for kind, runs in (("disk", disk_runs), ("compile", compile_runs)):
        for i in range(runs):
            if kind == "compile":
                for f in (data / "artifacts").rglob("*.cwasm"):
                    f.unlink()
            host = start_wasmhost(tmp, data=data)
            try:
                for w in workloads[i % len(workloads):] + workloads[:i % len(workloads)]:
                    s = first_response(host.port, w)
                    if s["tier"] != kind:
                        raise RuntimeError(f"{kind} run {i}: {w.name} came from the {s['tier']} tier")
                    samples[w.name][kind].append(s)
            finally:
                host.stop()
            progress(f"http restart tiers: {kind} restart {i + 1}/{runs}")
    out: dict[str, dict] = {}
    for w in workloads:
        out[w.name] = {kind: {"client_p50_us": round(statistics.median(s["client_us"] for s in ss), 1),
                              "client_max_us": round(max(s["client_us"] for s in ss), 1),
                              "host_p50_us": round(statistics.median(s["host_us"] for s in ss), 1),
                              "n": len(ss)}
                       for kind, ss in samples[w.name].items()}
    return out


def with_nonce(wasm: bytes, nonce: str) -> bytes:
    """The same module plus a custom section: new bytes, new digest, so the deploy really compiles."""
    name = b"bench-nonce"
    payload = bytes([len(name)]) + name + nonce.encode()
    assert len(payload) < 128
    return wasm + b"\x00" + bytes([len(payload)]) + payload


def deploy_to_first_response(tmp: Path, workloads: list[Workload], runs: int,
                             progress: Callable[[str], None]) -> dict:
    """PUT a never-seen module, then GET it: the time until its first answer, as a user sees it."""
    host = start_wasmhost(tmp, data=tmp / "deploy-data")
    out: dict[str, dict] = {}
    try:
        for w in workloads:
            totals, compiles = [], []
            for i in range(runs):
                wasm = with_nonce(w.wasm.read_bytes(), f"{time.time_ns()}-{i}")
                conn = http.client.HTTPConnection("127.0.0.1", host.port, timeout=120)
                t0 = time.perf_counter()
                conn.request("PUT", f"/v1/functions/{w.name}", body=wasm, headers={"content-type": "application/wasm"})
                resp = conn.getresponse()
                info = resp.read()
                if resp.status not in (200, 201):
                    raise RuntimeError(f"deploy {w.name}: {resp.status} {info[:300]!r}")
                headers = {"content-type": w.content_type} if w.content_type else {}
                conn.request(w.method, f"/fn/{w.name}", body=w.body or None, headers=headers)
                answer = conn.getresponse()
                body = answer.read()
                totals.append(time.perf_counter() - t0)
                conn.close()
                problem = w.check(answer.status, body)
                if problem:
                    raise RuntimeError(f"first response after deploy of {w.name}: {problem}")
                compiles.append(float(json.loads(info).get("compile_ms", 0.0)))
            out[w.name] = {"p50_ms": round(statistics.median(totals) * 1e3, 2),
                           "max_ms": round(max(totals) * 1e3, 2),
                           "compile_ms_p50": round(statistics.median(compiles), 2), "n": runs}
            progress(f"deploy to first response: {w.name} {out[w.name]['p50_ms']} ms")
    finally:
        host.stop()
    return out

