"""Deadlines for awaits on the hot path, checked by one sweep instead of a timer each.

`asyncio.timeout()` around reading a request body made a Timeout object, pushed a TimerHandle
on the loop's heap and cancelled it, for every request: a sixth of a small POST's Python
(bench/design-figures.md: body-deadline). A deadline here is one dict entry; a sweep every `tick` seconds cancels the tasks
whose deadline has passed, so a deadline fires up to `tick` late. That suits the deadlines it
serves (request bodies: 30 s by default), not precise ones. Event loop thread only.
"""

from __future__ import annotations

import asyncio
import time

TICK_S = 0.25


class Deadlines:
    def __init__(self, tick_s: float = TICK_S) -> None:
        self.tick_s = tick_s
        self._due: dict[asyncio.Task, float] = {}
        self._expired: set[asyncio.Task] = set()
        self._sweep_handle: asyncio.TimerHandle | None = None

    def start(self, seconds: float) -> asyncio.Task:
        """Cancel the current task if it is still within `start`/`passed` after `seconds`; returns
        the task, to hand to `passed`."""
        task = asyncio.current_task()
        assert task is not None
        self._due[task] = time.monotonic() + seconds
        if self._sweep_handle is None:
            self._sweep_handle = asyncio.get_running_loop().call_later(self.tick_s, self._sweep)
        return task

    def stop(self, task: asyncio.Task) -> None:
        """The guarded part is over (call it in a finally)."""
        self._due.pop(task, None)
        self._expired.discard(task)

    def passed(self, task: asyncio.Task) -> bool:
        """For an `except CancelledError`: True when the cancellation was this deadline's alone,
        which is then withdrawn (the caller raises its own timeout error instead); False when
        someone else cancelled the task too (the caller re-raises)."""
        if task not in self._expired:
            return False
        self._expired.discard(task)
        return task.uncancel() == 0

    def _sweep(self) -> None:
        now = time.monotonic()
        for task, deadline in list(self._due.items()):
            if deadline <= now:
                del self._due[task]
                self._expired.add(task)
                task.cancel()
        self._sweep_handle = None
        if self._due:
            self._sweep_handle = asyncio.get_running_loop().call_later(self.tick_s, self._sweep)
