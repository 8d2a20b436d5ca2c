"""Soak: 20,000 requests at concurrency 64 against one real `wasmhost serve`, good and hostile
functions mixed, after a warm-up (a burst that starts every worker thread, then 2,000 requests
of the same mix).

Every good answer must be right (status 200, body byte-exact, or derived exactly from that
request's own unique body, query and headers, so an answer crossed between requests is caught)
and no good call may get a 5xx. Every hostile call must end with its documented error (code and
HTTP status of `wasmhost/errors.py`, as `tests/test_hostile_http.py` expects), except that a
503 `overloaded` with `Retry-After` is accepted for a hostile function (counted and printed).
Afterwards the server's RSS, threads and open file descriptors must be within the bounds
below. Meanwhile a probe checks that a wall-clock deadline (timeout_ms) holds under that load
(it did not while the epoch ticker was a Python thread). The numbers are printed (`pytest -s`); rerun a schedule with
SOAK_SEED=<seed>.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import httpx
import msgpack
import psutil
import pytest

from .conftest import ROOT
from .server import Server

pytestmark = pytest.mark.slow

MIB = 1024 * 1024
WARMUP = 2_000
REQUESTS = 20_000
CONCURRENCY = 64
MAX_FUEL = 20_000_000_000  # Settings().max_fuel
REQUEST_TIMEOUT_S = 30.0  # a client gives up on one answer after this (counted as a failure)
HELLO = b"Hello, world!\n"

# ---- the functions -------------------------------------------------------------------------------
#
# A Call is what is sent to /fn/soak-<function><path>; its soak_id (unique per request) goes in an
# `x-soak-id` header. A Check gets the call and the answer (status, headers, body) and returns
# what is wrong with it, or None.


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: bytes
    soak_id: str


Answer = tuple[int, dict[str, str], bytes]
Check = Callable[[Call, Answer], "str | None"]


def exact(expected: bytes, content_type: str | None = None) -> Check:
    def check(call: Call, answer: Answer) -> str | None:
        status, headers, body = answer
        if status != 200 or body != expected:
            return f"{status} {body[:200]!r}"
        if content_type is not None and headers.get("content-type") != content_type:
            return f"content-type {headers.get('content-type')!r}"
        return None
    return check


def check_echo(call: Call, answer: Answer) -> str | None:
    """echo_handler: the body is the msgpack request exactly as the host encoded it for the guest."""
    status, headers, body = answer
    if status != 200 or headers.get("content-type") != "application/msgpack":
        return f"{status} {headers.get('content-type')!r} {body[:200]!r}"
    try:
        seen = msgpack.unpackb(body, raw=False)
    except Exception as exc:  # noqa: BLE001 - any decoding failure is a wrong answer
        return f"undecodable echo: {exc!r} {body[:200]!r}"
    path, _, query = call.path.partition("?")
    wrong = [k for k, v in (("method", call.method), ("path", path), ("query", query), ("body", call.body))
             if seen.get(k) != v]
    if ["x-soak-id", call.soak_id] not in seen.get("headers", []):
        wrong.append("headers")
    return f"echo differs in {wrong}: {seen!r}"[:400] if wrong else None


def check_sha(call: Call, answer: Answer) -> str | None:
    """c-sha256 (an SDK example): the hex SHA-256 of the request body."""
    status, _, body = answer
    expected = hashlib.sha256(call.body).hexdigest().encode()
    return None if status == 200 and body == expected else f"{status} {body[:200]!r} != {expected!r}"


def check_env(call: Call, answer: Answer) -> str | None:
    """wagi_env: argv (the query items), the CGI environment, then `stdin:` and the body, exactly."""
    status, _, body = answer
    if status != 200:
        return f"{status} {body[:200]!r}"
    path, _, query = call.path.partition("?")
    args = b"".join(b"arg:%s\n" % item.encode() for item in ["/fn/soak-wagi-env", *query.split("&")])
    wanted = [b"\nenv:HTTP_X_SOAK_ID=%s\n" % call.soak_id.encode(), b"\nenv:PATH_INFO=%s\n" % path.encode(),
              b"\nenv:QUERY_STRING=%s\n" % query.encode(), b"\nenv:CONTENT_LENGTH=%d\n" % len(call.body),
              b"\nenv:REQUEST_METHOD=%s\n" % call.method.encode()]
    if not body.startswith(args) or not body.endswith(b"\nstdin:" + call.body) or not all(w in body for w in wanted):
        return f"wagi env dump wrong: {body[:300]!r}"
    return None


def error(status: int, code: str, trap_code: str | None = None) -> Check:
    def check(call: Call, answer: Answer) -> str | None:
        got, _, body = answer
        try:
            err = json.loads(body)["error"]
        except (ValueError, KeyError, TypeError):
            return f"{got} not an error body: {body[:200]!r}"
        if got != status or err.get("code") != code or (trap_code and err.get("trap_code") != trap_code):
            return f"{got} {err}"[:400]
        return None
    return check


@dataclass(frozen=True)
class Fn:
    module: str  # under the built modules/ (WAT), or "wasm/<file>" for a committed SDK example
    params: dict[str, int]  # deploy parameters: limits, and `concurrency` (its slots in the pool)
    weight: float  # percent of the requests
    check: Check
    method: str = "GET"
    unique: bool = False  # a unique body and query per request (the check derives the answer from them)
    hostile: bool = False


GOOD: dict[str, Fn] = {
    # Inline on the event loop (memory tier, handler without WASI).
    "hello": Fn("hello_handler", {}, 24, exact(HELLO, "text/plain; charset=utf-8")),
    "echo": Fn("echo_handler", {}, 15, check_echo, "POST", unique=True),
    "sha256": Fn("wasm/c-sha256", {"fuel": 2_000_000_000}, 12, check_sha, "POST", unique=True),
    # On the worker pool (WAGI, WASI, or over the inline fuel budget).
    "wagi": Fn("hello_wagi", {}, 12, exact(b"Hello from WAGI\n", "text/plain")),
    "wagi-env": Fn("wagi_env", {}, 11, check_env, "POST", unique=True),
    "wasi": Fn("wasi_handler", {}, 10, exact(b"Hello from WASI handler\n")),
    "cpu": Fn("cpu_loop", {"fuel": 1_000_000_000}, 1, exact(b"4135555716")),  # ~20 ms of CPU each
}
# Small limits, so that every hostile call ends within ~100 ms.
HOSTILE: dict[str, Fn] = {
    "loop-fuel": Fn("hostile/infinite_loop", {"fuel": 1_000_000}, 1.2, error(504, "fuel_exhausted")),
    "loop-clock": Fn("hostile/infinite_loop", {"fuel": MAX_FUEL, "timeout_ms": 50}, 1.0, error(504, "timeout")),
    "sleeper": Fn("hostile/sleeper", {"timeout_ms": 100}, 1.4, error(504, "timeout")),
    "log-spin": Fn("hostile/log_spin", {"fuel": 1_000_000}, 1.0, error(504, "fuel_exhausted")),
    "memory-bomb": Fn("hostile/memory_bomb", {"memory_mb": 8}, 1.2, error(502, "memory_limit")),
    "recursion": Fn("hostile/deep_recursion", {}, 1.2, error(502, "trap", "stack_overflow")),
    "unreachable": Fn("hostile/unreachable", {}, 1.0, error(502, "trap", "unreachable")),
    "oob-read": Fn("hostile/oob_read", {}, 1.0, error(502, "trap", "memory_out_of_bounds")),
    "table-bomb": Fn("hostile/table_bomb", {}, 1.0, error(502, "trap", "unreachable")),
    "stdout-flood": Fn("hostile/stdout_flood", {"fuel": MAX_FUEL}, 1.0, error(413, "too_large")),
    "oversized": Fn("hostile/oversized_output", {"memory_mb": 32}, 1.0, error(413, "too_large")),
    "malformed": Fn("hostile/malformed_response", {}, 1.0, error(502, "bad_response")),
    "nonzero-exit": Fn("hostile/nonzero_exit", {}, 1.0, error(502, "nonzero_exit")),
    "log-flood": Fn("hostile/log_flood", {"fuel": MAX_FUEL}, 1.0, exact(HELLO)),  # must succeed, logs cut
    # Not in the mix (weight 0): the warm-up's burst that starts every worker thread.
    "sleeper-1s": Fn("hostile/sleeper", {"timeout_ms": 1000, "concurrency": 32}, 0, error(504, "timeout")),
}
FUNCTIONS = {**GOOD, **{name: Fn(**{**fn.__dict__, "hostile": True}) for name, fn in HOSTILE.items()}}


def schedule(total: int, rng: random.Random) -> list[str]:
    """Exactly round(total * weight / sum) calls of each function, shuffled."""
    weights = sum(fn.weight for fn in FUNCTIONS.values())
    names = [name for name, fn in FUNCTIONS.items() for _ in range(round(total * fn.weight / weights))]
    names += ["hello"] * (total - len(names))
    rng.shuffle(names)
    return names[:total]


def make_call(name: str, index: int, rng: random.Random) -> Call:
    fn = FUNCTIONS[name]
    soak_id = f"{index}-{rng.getrandbits(32):08x}"
    if not fn.unique:
        return Call(fn.method, "/", b"", soak_id)
    size = rng.choice((0, 1, 17, 200, 1000, 3000))
    body = b"soak %s " % soak_id.encode() + rng.randbytes(size)
    query = f"n={index}&k={soak_id}"
    return Call(fn.method, f"/p/{index % 7}/q?{query}", body, soak_id)


# ---- a raw HTTP/1.1 keep-alive client --------------------------------------------------------------

@dataclass
class Tally:
    statuses: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    wrong: list[str] = field(default_factory=list)  # good calls answered wrongly (incl. any 5xx)
    hostile_wrong: list[str] = field(default_factory=list)  # hostile calls without their documented outcome
    overloaded: Counter = field(default_factory=Counter)  # per hostile function: 503 overloaded + Retry-After
    connection_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def count(self) -> int:
        return sum(sum(c.values()) for c in self.statuses.values())


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers["content-length"]))
    return status, headers, body


def classify(tally: Tally, name: str, call: Call, answer: Answer, seconds: float) -> None:
    fn = FUNCTIONS[name]
    status, headers, _ = answer
    tally.statuses[name][status] += 1
    problem = fn.check(call, answer)
    if not fn.hostile:
        tally.latencies[name].append(seconds)
        if problem is not None:
            tally.wrong.append(f"{name} #{call.soak_id}: {problem}")
        return
    if problem is not None and status == 503:
        overloaded = error(503, "overloaded")(call, answer) is None and headers.get("retry-after", "").isdigit()
        if overloaded:
            tally.overloaded[name] += 1
            return
    if problem is not None:
        tally.hostile_wrong.append(f"{name} #{call.soak_id}: {problem}")


async def run_load(port: int, names: list[str], start_index: int, seed: int) -> Tally:
    """`names` in order over CONCURRENCY keep-alive connections, each sending its next request as
    soon as its previous answer is complete."""
    tally = Tally()
    rng = random.Random(seed)
    calls = [(name, make_call(name, start_index + i, rng)) for i, name in enumerate(names)]
    queue = iter(calls)

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for name, call in queue:
                request = (f"{call.method} /fn/soak-{name}{call.path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                           f"x-soak-id: {call.soak_id}\r\nContent-Length: {len(call.body)}\r\n\r\n").encode()
                started = time.perf_counter()
                try:
                    writer.write(request + call.body)
                    answer = await asyncio.wait_for(read_answer(reader), REQUEST_TIMEOUT_S)
                except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError) as exc:
                    tally.connection_errors.append(f"{name} #{call.soak_id}: {exc!r}")
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                classify(tally, name, call, answer, time.perf_counter() - started)
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(CONCURRENCY)))
    tally.seconds = time.perf_counter() - started
    return tally


# ---- the server's resources --------------------------------------------------------------------------

@dataclass(frozen=True)
class Resources:
    rss: int  # bytes, the server process and its children
    threads: int
    fds: int

    def __str__(self) -> str:
        return f"RSS {self.rss / MIB:.1f} MiB, {self.threads} threads, {self.fds} fds"


def resources(pid: int) -> Resources:
    root = psutil.Process(pid)
    procs = [root, *root.children(recursive=True)]
    return Resources(sum(p.memory_info().rss for p in procs), sum(p.num_threads() for p in procs),
                     sum(p.num_fds() for p in procs))


def settled(pid: int, quiet_s: float = 1.0, within_s: float = 10.0) -> Resources:
    """Resources once traffic has stopped: after `quiet_s`, then until two readings 0.5 s apart
    agree on threads and fds (closing connections and finishing log writes take a moment)."""
    time.sleep(quiet_s)
    deadline = time.monotonic() + within_s
    last = resources(pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = resources(pid)
        if (now.threads, now.fds) == (last.threads, last.fds):
            return now
        last = now
    return last


class PeakRss(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.25):
            try:
                self.peak = max(self.peak, resources(self.pid).rss)
            except psutil.Error:
                return


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3 if ordered else float("nan")


# ---- the test -------------------------------------------------------------------------------------------

# The server's defaults (max_concurrency 32, max_queue 256, per-function slots 32 // 4 = 8 and
# function_queue 64, ...) except the response limit: 1 MiB, as in test_hostile_http.py. At the
# default 16 MiB, 1,000 stdout-flood calls alone left the server at ~320 MiB RSS and this mix at
# 440-600 MiB, flat over 40,000 requests: glibc raises its mmap threshold to the size of a freed
# 16 MiB capture buffer, so later ones come from per-thread arenas and stay resident. Bounded, not
# a leak, but it moves by +-64 MiB from one reading to the next and would drown any leak this test
# could see (with MALLOC_MMAP_THRESHOLD_=131072 it stays at ~64 MiB, the calls 5x slower).
SERVER_ENV = {"WASMHOST_MAX_RESPONSE_BYTES": str(1 * MIB)}

# Bounds: measured first on the 2-core machine (the test's docstring has the figures and reasons).
RSS_GROWTH_BOUND = 32 * MIB
THREAD_SLACK = 2
FD_SLACK = 4

# The deadline probe: an endless loop with fuel too high to matter and a 1 s wall-clock deadline,
# called a few times alone and a few times during the measured run (one call at a time).
DEADLINE_MS = 1000
DEADLINE_SLACK = 1.25  # the guest may run at most 1.25 x timeout_ms (nominal: +1 tick of 10 ms)
DEADLINE_PROBES = 3


@dataclass
class Soak:
    warm: Tally
    tally: Tally
    at_start: Resources
    at_warmup: Resources
    at_end: Resources
    peak_rss: int
    alive: bool
    log: str
    after: tuple[int, bytes]  # a good call once the soak is over
    idle_runs: list[float]  # the deadline probe's Server-Timing `run`, in ms, with no other traffic
    loaded_runs: list[float]  # the same, each one started and finished during the measured run
    probe_errors: list[str]  # deadline probes that did not end in 504 timeout


def deadline_probe(url: str, runs: list[float], errors: list[str], during: threading.Event | None,
                   stop: threading.Event) -> None:
    """Call soak-deadline DEADLINE_PROBES times, one after the other; keep each call's run time
    (Server-Timing `run`, ms) and, with `during`, only calls the load ran through from start to end."""
    with httpx.Client(base_url=url, timeout=60) as client:
        for _ in range(DEADLINE_PROBES):
            if stop.is_set() or (during is not None and not during.is_set()):
                return
            try:
                r = client.get("/fn/soak-deadline")
                r.json()
            except (httpx.HTTPError, ValueError) as exc:
                errors.append(repr(exc))
                continue
            if during is not None and not during.is_set():
                return
            if r.status_code != 504 or r.json()["error"]["code"] != "timeout":
                errors.append(f"{r.status_code} {r.text[:300]}")
                continue
            timing = {part.strip().split(";")[0]: float(part.rsplit("dur=", 1)[1])
                      for part in r.headers["server-timing"].split(",")}
            runs.append(timing["run"])


@pytest.fixture(scope="module")
def soak(tmp_path_factory: pytest.TempPathFactory, modules_dir: Path) -> Soak:
    seed = int(os.environ.get("SOAK_SEED") or random.randrange(1 << 30))
    print(f"\nsoak seed {seed} (rerun with SOAK_SEED={seed})")
    rng = random.Random(seed)
    data = tmp_path_factory.mktemp("soak") / "data"
    with Server(data, env=SERVER_ENV) as srv:
        for name, fn in FUNCTIONS.items():
            path = (ROOT / "modules" / f"{fn.module}.wasm" if fn.module.startswith("wasm/")
                    else modules_dir / f"{fn.module}.wasm")
            r = srv.deploy(f"soak-{name}", path.read_bytes(), **fn.params)
            assert r.status_code == 201, (name, r.text)
        r = srv.deploy("soak-deadline", (modules_dir / "hostile/infinite_loop.wasm").read_bytes(), fuel=MAX_FUEL,
                       timeout_ms=DEADLINE_MS)
        assert r.status_code == 201, r.text
        assert srv.proc is not None
        pid = srv.proc.pid
        at_start = resources(pid)
        stop = threading.Event()
        idle_runs: list[float] = []
        probe_errors: list[str] = []
        deadline_probe(srv.url, idle_runs, probe_errors, None, stop)

        # 64 one-second sleepers at once: every one of the pool's max_concurrency threads is
        # started now (see the test's docstring), then the mix.
        burst = asyncio.run(run_load(srv.port, ["sleeper-1s"] * CONCURRENCY, 0, rng.randrange(1 << 30)))
        assert burst.hostile_wrong == [] and burst.connection_errors == [], burst.hostile_wrong
        warm = asyncio.run(run_load(srv.port, schedule(WARMUP, rng), CONCURRENCY, rng.randrange(1 << 30)))
        at_warmup = settled(pid)

        peak = PeakRss(pid)
        peak.start()
        during = threading.Event()
        loaded_runs: list[float] = []
        prober = threading.Thread(target=lambda: (stop.wait(2.0),
                                                  deadline_probe(srv.url, loaded_runs, probe_errors, during, stop)))
        schedule_main = schedule(REQUESTS, rng)
        load_seed = rng.randrange(1 << 30)

        async def main_run() -> Tally:
            during.set()
            try:
                return await run_load(srv.port, schedule_main, CONCURRENCY + WARMUP, load_seed)
            finally:
                during.clear()

        prober.start()
        try:
            tally = asyncio.run(main_run())
        finally:
            stop.set()
            peak.stop.set()
            peak.join()
            prober.join()
        at_end = settled(pid)

        alive = srv.proc.poll() is None
        log = srv.log()
        r = srv.client.get("/fn/soak-hello")
        after = (r.status_code, r.content)

    good_latencies = [s for name in GOOD for s in tally.latencies[name]]
    lines = [f"soak: {tally.count()} requests in {tally.seconds:.1f} s ({tally.count() / tally.seconds:.0f}/s) "
             f"at concurrency {CONCURRENCY}, after {warm.count()} warm-up requests in {warm.seconds:.1f} s",
             f"good calls: p50 {pct(good_latencies, 0.5):.1f} ms, p99 {pct(good_latencies, 0.99):.1f} ms, "
             f"max {max(good_latencies, default=0) * 1e3:.0f} ms"]
    for name in (name for name in FUNCTIONS if tally.statuses[name]):
        statuses = " ".join(f"{status}x{n}" for status, n in sorted(tally.statuses[name].items()))
        extra = ""
        if name in GOOD and tally.latencies[name]:
            extra = f"  p50 {pct(tally.latencies[name], 0.5):.1f} ms p99 {pct(tally.latencies[name], 0.99):.1f} ms"
        if tally.overloaded[name]:
            extra += f"  ({tally.overloaded[name]} overloaded)"
        lines.append(f"  {'hostile' if name in HOSTILE else 'good':7s} {name:13s} {statuses}{extra}")
    lines += [f"start:   {at_start}", f"warm-up: {at_warmup}", f"end:     {at_end}",
              f"RSS peak during the run {peak.peak / MIB:.1f} MiB; growth warm-up -> end "
              f"{(at_end.rss - at_warmup.rss) / MIB:+.1f} MiB (bound {RSS_GROWTH_BOUND / MIB:.0f} MiB)",
              f"hostile 503 overloaded: {sum(tally.overloaded.values())}; wrong good answers: {len(tally.wrong)}; "
              f"wrong hostile outcomes: {len(tally.hostile_wrong)}; connection errors: {len(tally.connection_errors)}",
              f"timeout_ms={DEADLINE_MS} loop ran (ms): alone {[round(x) for x in idle_runs]}, "
              f"during the run {[round(x) for x in loaded_runs]}"]
    print("\n".join(lines))
    return Soak(warm, tally, at_start, at_warmup, at_end, peak.peak, alive, log, after, idle_runs, loaded_runs,
                probe_errors)


def test_soak_good_and_hostile_functions_at_concurrency_64(soak: Soak) -> None:
    """20,000 measured requests at concurrency 64 (85 % good, 15 % hostile), after a warm-up of
    64 one-second sleepers and 2,000 requests of the same mix. ~45 s on the 2-core machine.

    At concurrency 64 no call can be refused with 503: the pool admits 32 + 256, and a function
    has 8 slots and 64 places on its line. So every good call must be answered right, and a 503
    for a hostile one would be a change of policy (accepted and printed, as the issue asks).

    Resources are read with every client connection closed, after a quiet second and once two
    readings 0.5 s apart agree; the end reading is compared with the one after warm-up.
    Measured here (8 runs): start ~62 MiB / 13 threads / 26 fds; after warm-up 94-102 MiB /
    45 / 40; at the end 104-109 MiB / 45 / 40; peak during the run 106-110 MiB.

    - RSS grows by less than 32 MiB. Warm-up has filled what is meant to stay (compiled modules
      in the memory tier, the pooling allocator's slots, every worker thread's stack and malloc
      arena, the log store's newest 200 records per function, the metrics). Growth over the
      20,000 requests was 5-15 MiB, and it is a plateau, not a slope (in 40,000 requests in
      blocks of 4,000 it stayed within 104-109 MiB): 32 MiB is twice the largest, while a leak
      of 1.7 KiB per request (a request body or a Request object kept) fails.
    - Threads: at most warm-up + 2. ThreadPoolExecutor starts its threads lazily and keeps
      them, and its idle count is really a count of finished calls, so without help the pool
      creeps towards max_concurrency (32) over thousands of calls (measured: 31-33 threads after
      a plain warm-up, 41-45 at the end). The warm-up's 64 sleepers, deployed with concurrency
      32, start all 32 at once; the other 13 (event loop, epoch ticker (native), log writer, libuv's 4
      workers, ...) all exist after warm-up too. Measured: 45 and 45. A thread per call, or per
      hostile call, would add thousands.
    - File descriptors: at most warm-up + 4. Measured 40 and 40 (26 before the first call: the
      log store's database, the registry's WAL, artifacts are opened on first use). A leaked
      descriptor per call, per connection or per failed call would add thousands.
    """
    s = soak
    assert s.alive, s.log
    assert "Traceback" not in s.log, s.log
    assert s.after == (200, HELLO)
    assert s.warm.count() + len(s.warm.connection_errors) == WARMUP
    assert s.tally.count() + len(s.tally.connection_errors) == REQUESTS
    assert s.warm.connection_errors == [] and s.tally.connection_errors == [], s.tally.connection_errors[:10]
    assert s.warm.wrong == [] and s.tally.wrong == [], (s.warm.wrong + s.tally.wrong)[:10]
    assert s.warm.hostile_wrong == [] and s.tally.hostile_wrong == [], (s.warm.hostile_wrong + s.tally.hostile_wrong)[:10]
    assert s.at_end.rss - s.at_warmup.rss < RSS_GROWTH_BOUND, (s.at_warmup, s.at_end)
    assert s.at_end.threads <= s.at_warmup.threads + THREAD_SLACK, (s.at_warmup, s.at_end)
    assert s.at_end.fds <= s.at_warmup.fds + FD_SLACK, (s.at_warmup, s.at_end)
    # The deadline probe is sound: it always times out, and alone within its bound (measured 1023-1053 ms).
    assert s.probe_errors == [], s.probe_errors
    assert len(s.idle_runs) == DEADLINE_PROBES and max(s.idle_runs) < DEADLINE_MS * DEADLINE_SLACK, s.idle_runs


def test_wall_clock_deadline_holds_during_the_soak(soak: Soak) -> None:
    """A guest stopped by its wall-clock deadline (timeout_ms) runs no longer under load than
    alone: at most 1.25 x timeout_ms, measured by the server itself (Server-Timing `run`).
    It failed (1.4-2.0 s) while the epoch ticker was a Python thread; wasmhost/csrc/ticker.c fixed it."""
    if len(soak.loaded_runs) < 2:
        pytest.skip(f"the measured run ended before two deadline probes had finished: {soak.loaded_runs}")
    assert max(soak.loaded_runs) < DEADLINE_MS * DEADLINE_SLACK, (soak.idle_runs, soak.loaded_runs)
