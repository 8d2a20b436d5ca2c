"""The one place where errors become HTTP answers.

Every error answer is `{"error": {"code", "message", ...details}}` with the headers its error
calls for (`Retry-After` for `overloaded`, `WWW-Authenticate` for `unauthorized`, the request id
when there is one). `render_error` builds it; the function route sends it as ASGI messages
(`send_error`), the Starlette routes as a `Response` (`error_response`), and the protocol writes
it raw for a head it refused. Nothing else (no traceback, no exception text of ours) ever reaches
a client.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable, Iterable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ..errors import BadRequest, InternalError, MethodNotAllowed, NotFound, TooLarge, Unauthorized, WasmhostError

log = logging.getLogger("wasmhost.http")

Header = tuple[bytes, bytes]
Send = Callable[[dict[str, Any]], Awaitable[None]]

WWW_AUTHENTICATE = (b"www-authenticate", b'Bearer realm="wasmhost"')


def error_body(exc: WasmhostError, request_id: str | None = None) -> dict:
    body = {"error": exc.to_dict()}
    if request_id:
        body["error"]["request_id"] = request_id
    return body


def render_error(exc: WasmhostError, request_id: bytes | None = None, *, close: bool = False,
                 extra: Iterable[Header] = ()) -> tuple[int, list[Header], bytes]:
    """(status, headers, body) of the answer to `exc`. `extra` headers go last (the function
    route's own: Server-Timing, X-Request-Id, X-Wasmhost-Version, when a guest ran); `close`
    adds `Connection: close`."""
    rid = request_id.decode() if request_id else None
    body = json.dumps(error_body(exc, rid), ensure_ascii=False, separators=(",", ":")).encode()  # as JSONResponse
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    extra = list(extra)
    if request_id and not any(name == b"x-request-id" for name, _ in extra):
        headers.append((b"x-request-id", request_id))
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        headers.append((b"retry-after", b"%d" % retry_after))
    if isinstance(exc, Unauthorized):
        headers.append(WWW_AUTHENTICATE)
    if close:
        headers.append((b"connection", b"close"))
    headers.extend(extra)
    return exc.http_status, headers, body


async def send_error(send: Send, exc: WasmhostError, request_id: bytes | None = None, *,
                     close: bool = False, extra: Iterable[Header] = ()) -> None:
    """Answer `exc` over ASGI."""
    status, headers, body = render_error(exc, request_id, close=close, extra=extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def error_response(exc: WasmhostError, request_id: bytes | None = None, extra: Iterable[Header] = ()) -> Response:
    """Answer `exc` from a Starlette route."""
    status, headers, body = render_error(exc, request_id, extra=extra)
    response = Response(body, status_code=status)
    response.raw_headers = headers
    return response


async def on_wasmhost_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, WasmhostError)
    return error_response(exc)


async def on_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route, wrong method, a form it cannot parse), in our shape."""
    assert isinstance(exc, HTTPException)
    path = request.url.path[:200]
    error: WasmhostError
    if exc.status_code == 404:
        error = NotFound(f"no route for {path!r}; functions are called at /fn/<name>, see /openapi.json")
    elif exc.status_code == 405:
        error = MethodNotAllowed(f"method {request.method} is not allowed on {path!r}; see /openapi.json")
    elif exc.status_code == 413:
        error = TooLarge(str(exc.detail))
    elif exc.status_code == 400:
        error = BadRequest(str(exc.detail))
    else:
        log.error("unexpected HTTP %d from Starlette on %s: %s", exc.status_code, path, exc.detail)
        error = InternalError("internal server error")
    extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (exc.headers or {}).items()]
    return error_response(error, extra=extra)


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(InternalError("internal server error"))
