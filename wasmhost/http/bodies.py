"""Reading a request body: a hard cap, a deadline, and its bytes held in the buffer budget.

Used by the function route and the admin API alike.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Awaitable, Callable

from ..errors import BadRequest, RequestTimeout, TooLarge
from .buffers import BufferBudget
from .deadlines import Deadlines

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
DIGITS = re.compile(r"[0-9]{1,18}")  # a Content-Length, a version, a count: no sign, no spaces


async def receive_body(scope: Scope, receive: Receive, limit: int, timeout_s: float | None = None,
                       budget: BufferBudget | None = None, deadlines: Deadlines | None = None) -> bytes:
    """The whole body, or TooLarge as soon as it is known to pass `limit`; with
    `timeout_s`, RequestTimeout when it has not all arrived within that many seconds (a
    client dripping a body a few bytes at a time would otherwise hold it open forever),
    enforced by `deadlines` (or asyncio.timeout without).

    With `budget`, the body's bytes are taken from the server's buffer budget: a declared
    Content-Length before the first byte is read (Overloaded if it does not fit, and then
    nothing is read), a chunked body as it arrives. On return the body holds exactly
    `len(body)` bytes there, which the caller gives back; on an error, nothing."""
    if timeout_s is not None:
        if deadlines is None:
            try:
                async with asyncio.timeout(timeout_s):
                    return await receive_body(scope, receive, limit, None, budget)
            except TimeoutError:
                raise _body_timeout(timeout_s) from None
        task = deadlines.start(timeout_s)
        try:
            return await receive_body(scope, receive, limit, None, budget)
        except asyncio.CancelledError:
            if deadlines.passed(task):
                raise _body_timeout(timeout_s) from None
            raise
        finally:
            deadlines.stop(task)
    framed = False
    declared = 0
    for key, value in scope["headers"]:
        if key == b"content-length":
            framed = True
            if not DIGITS.fullmatch(value.strip().decode("latin-1")):
                raise BadRequest("invalid Content-Length header")
            declared = int(value)
            if declared > limit:
                raise TooLarge(f"request body of {declared} bytes exceeds the limit of {limit} bytes",
                               limit=limit)
        elif key == b"transfer-encoding":
            framed = True
    if not framed and scope.get("http_version") in ("1.0", "1.1"):
        return b""  # HTTP/1: no Content-Length and no Transfer-Encoding means no body
    held = 0
    if budget is not None and declared:
        budget.take(declared)  # before the first receive(): uvicorn sends `100 Continue` there
        held = declared
    try:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise BadRequest("the client disconnected before sending the whole body")
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise TooLarge(f"request body exceeds the limit of {limit} bytes", limit=limit)
                if budget is not None and size > held:
                    budget.take(size - held, held)
                    held = size
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        if held != size and budget is not None:  # (httptools ends a body at its Content-Length)
            budget.give(held - size)
        return b"".join(chunks) if len(chunks) != 1 else chunks[0]
    except BaseException:
        if budget is not None:
            budget.give(held)
        raise


def _body_timeout(timeout_s: float) -> RequestTimeout:
    return RequestTimeout(f"the request body did not arrive within {timeout_s:g} s", timeout_s=timeout_s)


async def read_body(request: Any, limit: int, timeout_s: float | None = None,
                    budget: BufferBudget | None = None, deadlines: Deadlines | None = None) -> bytes:
    """`receive_body` for a Starlette request (the admin API)."""
    return await receive_body(request.scope, request.receive, limit, timeout_s, budget, deadlines)
