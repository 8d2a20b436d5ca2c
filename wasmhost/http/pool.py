"""A bounded pool of worker threads for invocations, with a line per function.

Wasm calls release the GIL, so invocations run in threads off the event loop.
At most `max_concurrency` run at once and at most `max_queue` wait; past that a
call is refused at once with `overloaded` (503 + Retry-After) instead of piling up.

Each function also has its own cap on calls in the pool (`limit` in `run`): its
calls past that wait on the function's own line, outside the shared queue, and
past `function_queue` of those they are refused. So a flood of slow calls to one
function holds at most its cap of the workers; another function's calls still
find a free thread and never queue behind the flood.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

from ..errors import Overloaded

T = TypeVar("T")


class FunctionLine:
    """One function's calls in the pool: how many hold a slot, and who waits for one.
    Touched only on the event loop's thread, so it needs no lock."""

    __slots__ = ("running", "waiters")

    def __init__(self) -> None:
        self.running = 0
        self.waiters: deque[asyncio.Future[None]] = deque()


class InvocationPool:
    def __init__(self, max_concurrency: int, max_queue: int, function_queue: int = 64) -> None:
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self.function_queue = function_queue
        self._executor = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="wasmhost-invoke")
        self._lock = threading.Lock()
        self.in_flight = 0  # running
        self.queued = 0  # admitted, waiting for a thread
        self.waiting = 0  # on a function's line, waiting for one of its slots
        self._lines: dict[str, FunctionLine] = {}

    async def run(self, fn: Callable[[], T], function: str | None = None, limit: int = 0) -> tuple[T, float]:
        """Run `fn` on a worker thread; returns its result and the seconds it waited (for
        its function's slot and for a thread). With `function` and `limit`, at most `limit`
        calls of that function are in the pool at once."""
        submitted = time.perf_counter()
        self._admit(function)
        if function is None or limit <= 0:
            return await self._run_on_thread(fn, submitted)
        line = self._lines.get(function)
        if line is None:
            line = self._lines[function] = FunctionLine()
        if line.running < limit and not line.waiters:
            line.running += 1
        else:
            await self._wait_for_slot(function, line, limit)
        try:
            return await self._run_on_thread(fn, submitted)
        finally:
            self._release(function, line)

    def _admit(self, function: str | None) -> None:
        with self._lock:
            if self.in_flight + self.queued + self.waiting >= self.max_concurrency + self.max_queue:
                raise Overloaded(f"all {self.max_concurrency} workers are busy and {self.queued + self.waiting} "
                                 "calls are waiting; retry shortly", retry_after=1)

    async def _wait_for_slot(self, function: str, line: FunctionLine, limit: int) -> None:
        if len(line.waiters) >= self.function_queue:
            raise Overloaded(f"function {function!r} already has {line.running} calls running (its limit is "
                             f"{limit}) and {len(line.waiters)} waiting; retry shortly", retry_after=1,
                             function=function, limit=limit)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        line.waiters.append(waiter)
        with self._lock:
            self.waiting += 1
        try:
            await waiter  # a finishing call hands its slot over: `running` stays counted
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # the slot was handed over as we left
                self._release(function, line)
            else:
                with contextlib.suppress(ValueError):  # `_release` may have dropped it already
                    line.waiters.remove(waiter)
                self._forget_if_idle(function, line)
            raise
        finally:
            with self._lock:
                self.waiting -= 1

    def _release(self, function: str, line: FunctionLine) -> None:
        """Pass the slot to the next live waiter, or free it."""
        while line.waiters:
            waiter = line.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        line.running -= 1
        self._forget_if_idle(function, line)

    def _forget_if_idle(self, function: str, line: FunctionLine) -> None:
        if line.running == 0 and not line.waiters and self._lines.get(function) is line:
            del self._lines[function]

    async def _run_on_thread(self, fn: Callable[[], T], submitted: float) -> tuple[T, float]:
        with self._lock:
            self.queued += 1

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

    def line(self, function: str) -> tuple[int, int]:
        """(calls holding a slot, calls waiting for one) for a function, for metrics and tests."""
        line = self._lines.get(function)
        return (line.running, len(line.waiters)) if line is not None else (0, 0)

    def prestart(self, threads: int = 2) -> None:
        """Start some worker threads now, so the first calls after a start do not pay for
        creating them (seen as `queue` in Server-Timing; bench/design-figures.md: pool-prestart)."""
        for future in [self._executor.submit(time.sleep, 0.001) for _ in range(min(threads, self.max_concurrency))]:
            future.result()

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
