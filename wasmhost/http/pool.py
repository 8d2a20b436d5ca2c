"""A bounded pool of worker threads for invocations.

Wasm calls release the GIL, so invocations run in threads off the event loop.
At most `max_concurrency` run at once and at most `max_queue` wait; past that a
call is refused at once with `overloaded` (503 + Retry-After) instead of piling up.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

from ..errors import Overloaded

T = TypeVar("T")


class InvocationPool:
    def __init__(self, max_concurrency: int, max_queue: int) -> None:
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self._executor = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="wasmhost-invoke")
        self._lock = threading.Lock()
        self.in_flight = 0  # running
        self.queued = 0  # admitted, waiting for a thread

    async def run(self, fn: Callable[[], T]) -> tuple[T, float]:
        """Run `fn` on a worker thread; returns its result and the seconds it waited for one."""
        with self._lock:
            if self.in_flight + self.queued >= self.max_concurrency + self.max_queue:
                raise Overloaded(f"all {self.max_concurrency} workers are busy and {self.queued} calls are "
                                 "waiting; retry shortly", retry_after=1)
            self.queued += 1
        submitted = time.perf_counter()

        def job() -> tuple[T, float]:
            started = time.perf_counter()
            with self._lock:
                self.queued -= 1
                self.in_flight += 1
            try:
                return fn(), started - submitted
            finally:
                with self._lock:
                    self.in_flight -= 1

        future = self._executor.submit(job)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            if future.cancel():  # the client left before a thread took it: it will never run
                with self._lock:
                    self.queued -= 1
            raise

    def prestart(self, threads: int = 2) -> None:
        """Start some worker threads now, so the first calls after a start do not pay for
        creating them (~0.4 ms each on this machine, seen as `queue` in Server-Timing)."""
        for future in [self._executor.submit(time.sleep, 0.001) for _ in range(min(threads, self.max_concurrency))]:
            future.result()

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
