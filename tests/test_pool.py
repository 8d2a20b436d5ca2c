"""The invocation pool's own contract: bounded admission, and threads started before the first call."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from wasmhost.errors import Overloaded
from wasmhost.http.pool import InvocationPool


def pool_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("wasmhost-invoke"))


def test_prestart_starts_threads_before_any_call() -> None:
    before = pool_threads()
    pool = InvocationPool(max_concurrency=4, max_queue=0)
    try:
        pool.prestart(2)
        assert pool_threads() - before == 2
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
