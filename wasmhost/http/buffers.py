"""One budget for the request and response bodies a worker process holds in memory.

Without it, memory grew with every open connection: forty clients that each sent 16 MiB of
body and then stalled held 650 MB until the body deadline, and forty that asked for an 8 MiB
answer and never read it held 375 MB (issue 15). Every body being received or waiting to be
sent now holds its bytes in a `BufferBudget`; one that does not fit is refused with 503
`overloaded` and `Retry-After`, before its bytes are read (a declared `Content-Length`) or
before they are sent (a response).

Small bodies, up to `SMALL` bytes, are counted but never refused: a connection holds that much
in uvicorn's own buffers anyway, and a flood of large bodies must not shed the small calls that
cost nothing. Everything here runs on the event loop thread, so there is no lock.
"""

from __future__ import annotations

from ..errors import Overloaded

SMALL = 64 * 1024  # = uvicorn's per-connection read buffer before it pauses reading


class BufferBudget:
    """At most `limit` bytes of bodies held at once (requests being read, answers being sent).

    `take` and `give` rather than a holder object per body: a request's body is taken once
    and given back once, on the hot path of every call that has one.
    """

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, size: int, held: int = 0, what: str = "a request body") -> None:
        """Hold `size` more bytes of a body that holds `held` already, or raise Overloaded
        (holding nothing more) when the body would pass SMALL and there is no room for it."""
        if held + size > SMALL and self.used + size > self.limit:
            raise Overloaded(f"the server holds too many request and response bytes to take {what} of "
                             f"{held + size} bytes now; retry shortly", retry_after=1, limit=self.limit)
        self.used += size

    def give(self, size: int) -> None:
        self.used -= size
