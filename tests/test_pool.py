"""The invocation pool's own contract: bounded admission, and threads started before the first call."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from wasmhost.errors import Overloaded
from wasmhost.http.pool import InvocationPool


def pool_threads() -> set[int]:
    return {t.ident or 0 for t in threading.enumerate() if t.name.startswith("wasmhost-invoke")}


def test_prestart_starts_threads_before_any_call() -> None:
    before = pool_threads()
    pool = InvocationPool(max_concurrency=4, max_queue=0)
    try:
        pool.prestart(2)
        assert len(pool_threads() - before) == 2  # new ones (another test's pool may be winding down)
        assert pool.in_flight == 0 and pool.queued == 0
    finally:
        pool.shutdown()


def test_admission_is_bounded_and_counters_return_to_zero() -> None:
    pool = InvocationPool(max_concurrency=1, max_queue=1)

    async def main() -> None:
        slow = [asyncio.create_task(pool.run(lambda: time.sleep(0.2))) for _ in range(2)]
        await asyncio.sleep(0.05)
        with pytest.raises(Overloaded):
            await pool.run(lambda: None)
        results = await asyncio.gather(*slow)
        assert [r[0] for r in results] == [None, None]
        assert results[1][1] > 0.1  # the second waited for the only thread

    try:
        asyncio.run(main())
        assert pool.in_flight == 0 and pool.queued == 0
    finally:
        pool.shutdown()


def test_a_function_holds_at_most_its_slots_and_waits_on_its_own_line() -> None:
    """Calls past a function's limit wait outside the shared queue, in order, and another
    function's call meanwhile gets a thread at once."""
    pool = InvocationPool(max_concurrency=4, max_queue=4, function_queue=2)
    running: list[str] = []
    peak = {"slow": 0}
    lock = threading.Lock()

    def job(name: str, seconds: float) -> str:
        with lock:
            running.append(name)
            peak[name] = max(peak.get(name, 0), running.count(name))
        time.sleep(seconds)
        with lock:
            running.remove(name)
        return name

    async def main() -> None:
        slow = [asyncio.create_task(pool.run(lambda: job("slow", 0.2), "slow", 2)) for _ in range(4)]
        await asyncio.sleep(0.05)
        assert pool.line("slow") == (2, 2) and pool.waiting == 2
        with pytest.raises(Overloaded) as refused:  # its line is full: refused, not queued
            await pool.run(lambda: job("slow", 0.2), "slow", 2)
        assert refused.value.details["function"] == "slow" and refused.value.details["limit"] == 2
        # another function is not behind the flood: a free thread at once
        result, waited = await pool.run(lambda: job("fast", 0.0), "fast", 2)
        assert result == "fast" and waited < 0.1
        results = await asyncio.gather(*slow)
        waits = sorted(w for _, w in results)
        assert waits[2] > 0.15 and waits[3] > 0.15  # the two past the limit waited for a slot

    try:
        asyncio.run(main())
        assert peak["slow"] == 2
        assert pool.line("slow") == (0, 0) and (pool.in_flight, pool.queued, pool.waiting) == (0, 0, 0)
    finally:
        pool.shutdown()


def test_a_call_that_leaves_the_line_frees_its_place() -> None:
    """A client that disconnects while its call waits for a slot leaves no count behind,
    and its slot (when it had just been handed one) goes to the next in line."""
    pool = InvocationPool(max_concurrency=2, max_queue=4, function_queue=4)

    async def main() -> None:
        first = asyncio.create_task(pool.run(lambda: time.sleep(0.15), "f", 1))
        await asyncio.sleep(0.02)
        leaving = asyncio.create_task(pool.run(lambda: "never", "f", 1))
        staying = asyncio.create_task(pool.run(lambda: "ran", "f", 1))
        await asyncio.sleep(0.02)
        assert pool.line("f") == (1, 2)
        leaving.cancel()
        await asyncio.sleep(0)
        assert pool.line("f") == (1, 1)
        await first
        assert (await staying)[0] == "ran"
        with pytest.raises(asyncio.CancelledError):
            await leaving

    try:
        asyncio.run(main())
        assert pool.line("f") == (0, 0) and (pool.in_flight, pool.queued, pool.waiting) == (0, 0, 0)
    finally:
        pool.shutdown()
