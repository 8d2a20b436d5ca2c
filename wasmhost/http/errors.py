"""The one place where errors become HTTP responses.

Every error body is `{"error": {"code", "message", ...details}}`. Nothing else
(no traceback, no exception text of ours) ever reaches a client.
"""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from ..errors import InternalError, Overloaded, Unauthorized, WasmhostError

log = logging.getLogger("wasmhost.http")

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
               413: "too_large", 415: "unsupported_media_type", 503: "overloaded"}


def error_body(exc: WasmhostError, request_id: str | None = None) -> dict:
    body = {"error": exc.to_dict()}
    if request_id:
        body["error"]["request_id"] = request_id
    return body


def error_response(exc: WasmhostError, request_id: str | None = None) -> JSONResponse:
    body = error_body(exc, request_id)
    headers: dict[str, str] = {}
    if isinstance(exc, Overloaded):
        headers["retry-after"] = str(exc.retry_after)
    if isinstance(exc, Unauthorized):
        headers["www-authenticate"] = 'Bearer realm="wasmhost"'
    if request_id:
        headers["x-request-id"] = request_id
    return JSONResponse(body, status_code=exc.http_status, headers=headers)


async def on_wasmhost_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, WasmhostError)
    return error_response(exc, getattr(request.state, "request_id", None))


async def on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own 404/405 (no such route, wrong method) in our JSON shape."""
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = str(exc.detail)
    if exc.status_code == 404:
        message = f"no route for {request.url.path[:200]!r}; functions are called at /fn/<name>, see /openapi.json"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path[:200]!r}; see /openapi.json"
    body = {"error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(InternalError("internal server error"), getattr(request.state, "request_id", None))
