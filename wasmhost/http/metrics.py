"""Prometheus metrics (prometheus_client).

With several worker processes, `wasmhost serve` sets PROMETHEUS_MULTIPROC_DIR
before the workers start, and /metrics aggregates every worker's figures
through prometheus_client's multiprocess collector. In a single process without
that variable, the metrics of this process are served.
"""

from __future__ import annotations

import os
import threading
from bisect import bisect_left
from typing import Any

import psutil
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import disable_created_metrics, multiprocess

LATENCY_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.005, 0.025, 0.1, 0.5, 2.5, 10.0, 60.0)

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
disable_created_metrics()  # no *_created series: they double the output and nobody graphs them


class Metrics:
    def __init__(self) -> None:
        # In multiprocess mode values go to files; metrics must live in the default registry.
        self.registry = None if MULTIPROCESS else CollectorRegistry()
        kw = {"registry": self.registry} if self.registry is not None else {}
        self.invocations = Counter("wasmhost_invocations_total", "Function invocations by outcome",
                                   ["function", "outcome"], **kw)
        self.duration = Histogram("wasmhost_invocation_duration_seconds",
                                  "Host-side duration of an invocation (load + instantiate + run)",
                                  ["function"], buckets=LATENCY_BUCKETS, **kw)
        self.queue_wait = Histogram("wasmhost_queue_wait_seconds", "Time waiting for a worker thread",
                                    buckets=LATENCY_BUCKETS, **kw)
        self.tiers = Counter("wasmhost_cache_tier_total", "Invocations by the cache tier that served them",
                             ["tier"], **kw)
        self.compile_seconds = Counter("wasmhost_compile_seconds_total", "Seconds spent compiling modules", **kw)
        self.deploys = Counter("wasmhost_deploys_total", "Deploys by outcome", ["outcome"], **kw)
        self.in_flight = Gauge("wasmhost_invocations_in_flight", "Invocations running now",
                               multiprocess_mode="livesum", **kw)
        self.queue_depth = Gauge("wasmhost_queue_depth", "Invocations waiting for a worker thread",
                                 multiprocess_mode="livesum", **kw)
        self.rss = Gauge("wasmhost_process_resident_memory_bytes", "Resident memory of each worker process",
                         multiprocess_mode="all", **kw)
        self.buffered = Gauge("wasmhost_buffered_bytes", "Request and response body bytes held in memory "
                              "(at most max_buffered_bytes per worker process)", multiprocess_mode="livesum", **kw)
        self.overloaded = Counter("wasmhost_overloaded_total", "Calls refused because the pool was full", **kw)
        self.process = psutil.Process()
        self._per_function: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._per_tier: dict[str, Any] = {}
        # Single process: calls are summed in plain Python and handed to prometheus_client
        # when /metrics is rendered (its mutex-guarded values are slow on the event loop:
        # bench/design-figures.md: metrics-batch). With several workers another process renders this one's files, so
        # every call is written through at once there.
        self._batch = not MULTIPROCESS and _bulk_histograms(self.duration)
        self._lock = threading.Lock()
        self._bounds = tuple(self.duration._upper_bounds) if self._batch else ()
        # (function, outcome, tier) -> [calls, seconds, calls per duration bucket]
        self._pending: dict[tuple[str, str, str], list[Any]] = {}

    def invocation(self, function: str, outcome: str, seconds: float, tier: str, queue_s: float) -> None:
        """Count one call."""
        if queue_s:  # inline calls never queued
            self.queue_wait.observe(queue_s)
        if not self._batch:
            self._write(function, outcome, tier, 1, seconds, None, seconds)
            return
        key = (function, outcome, tier)
        with self._lock:
            acc = self._pending.get(key)
            if acc is None:
                acc = self._pending[key] = [0, 0.0, [0] * len(self._bounds)]
            acc[0] += 1
            acc[1] += seconds
            acc[2][bisect_left(self._bounds, seconds)] += 1  # prometheus: the first bound >= amount

    def flush(self) -> None:
        """Hand the summed calls to prometheus_client (render does this first)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        for (function, outcome, tier), (calls, seconds, buckets) in pending.items():
            self._write(function, outcome, tier, calls, seconds, buckets, 0.0)

    def _write(self, function: str, outcome: str, tier: str, calls: int, seconds: float,
               buckets: list[int] | None, one: float) -> None:
        """Add `calls` calls to the prometheus values. Labelled children are kept (`labels()` is
        a slow lookup). `buckets` None: a single call of `one` seconds."""
        children = self._per_function.get((function, outcome))
        if children is None:
            children = self._per_function[(function, outcome)] = (
                self.invocations.labels(function, outcome), self.duration.labels(function))
        children[0].inc(calls)
        if buckets is None:
            children[1].observe(one)
        else:
            hist = children[1]
            hist._sum.inc(seconds)
            for i, count in enumerate(buckets):
                if count:
                    hist._buckets[i].inc(count)
        tier_child = self._per_tier.get(tier)
        if tier_child is None:
            tier_child = self._per_tier[tier] = self.tiers.labels(tier)
        tier_child.inc(calls)

    def render(self) -> bytes:
        self.flush()
        self.rss.set(self.process.memory_info().rss)
        if MULTIPROCESS:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        assert self.registry is not None
        return generate_latest(self.registry)


def _bulk_histograms(histogram: Histogram) -> bool:
    """Whether this prometheus_client's histogram children keep the per-bucket values and
    the sum that `Metrics.flush` adds to in bulk (`_buckets`, `_sum`: not public API, so
    checked here; without them every call is written through)."""
    try:
        child = histogram.labels("probe")
        ok = (len(child._buckets) == len(histogram._upper_bounds) and hasattr(child._sum, "inc")
              and all(hasattr(b, "inc") for b in child._buckets))
        histogram.remove("probe")
        return ok
    except Exception:  # noqa: BLE001 - any other shape: no bulk writes
        return False
