"""Metrics summed in Python between renders give the same exposition as writing every call
through to prometheus_client."""

from __future__ import annotations

import random

from wasmhost.http.metrics import Metrics


def _series(metrics: Metrics) -> dict[str, float]:
    out = {}
    for line in metrics.render().decode().splitlines():
        if line and not line.startswith("#") and "resident_memory" not in line:
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_batched_metrics_equal_written_through() -> None:
    batched, direct = Metrics(), Metrics()
    direct._batch = False
    assert batched._batch  # single process: batched
    r = random.Random(2)
    for i in range(3000):
        seconds = r.choice([0.00005, 0.0001, 0.00003, 0.3, 1e-7, 100.0, 60.0, r.random() * 0.01])
        args = (r.choice(["f", "g"]), r.choice(["ok", "trap"]), seconds, r.choice(["memory", "disk"]),
                r.choice([0.0, 0.0, 0.001]))
        batched.invocation(*args)
        direct.invocation(*args)
        if i == 1500:  # a render in between flushes what was summed so far
            _series(batched)
    got, want = _series(batched), _series(direct)
    assert got.keys() == want.keys()
    for name, value in want.items():  # sums may differ in the last bits (addition order)
        assert abs(got[name] - value) <= 1e-9 * max(1.0, abs(value)), name
