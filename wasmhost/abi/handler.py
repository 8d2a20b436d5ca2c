"""The `handler` interface: msgpack request in, msgpack response out (DESIGN §2a).

The host asks `wasmhost_alloc(len)` for room, writes the request there, calls
`wasmhost_handle(ptr, len)` and reads the response from `(ptr << 32) | len`.
Everything the guest returns is untrusted: bounds, size, types, header bytes.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import msgpack

from ..errors import BadResponse, TooLarge
from ..models import Request, Response
from ..native import EXTERN_FUNC, EXTERN_MEMORY, NativeCall, get_i32, get_i64, read_memory, set_i32, write_memory

TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
FORBIDDEN_IN_VALUE = re.compile(r"[\r\n\x00]")
MAX_HEADERS = 1000


def encode_request(request: Request, config: Mapping[str, str]) -> bytes:
    return msgpack.packb({
        "method": request.method,
        "path": request.path,
        "query": request.query,
        "headers": [list(pair) for pair in request.headers],
        "body": request.body,
        "config": dict(config),
    }, use_bin_type=True)


def _text(value: Any, what: str) -> str:
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise BadResponse(f"{what} is not valid UTF-8") from None
    if not isinstance(value, str):
        raise BadResponse(f"{what} must be a string, got {type(value).__name__}")
    return value


def _check_headers(headers_in: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(headers_in, (list, tuple)):
        raise BadResponse("response headers must be an array of [name, value] pairs")
    if len(headers_in) > MAX_HEADERS:
        raise BadResponse(f"response has {len(headers_in)} headers; at most {MAX_HEADERS} are allowed")
    headers: list[tuple[str, str]] = []
    for pair in headers_in:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise BadResponse("each response header must be a [name, value] pair")
        name, value = _text(pair[0], "header name"), _text(pair[1], "header value")
        if not TOKEN.match(name):
            raise BadResponse(f"invalid response header name {name[:60]!r}")
        if FORBIDDEN_IN_VALUE.search(value):
            raise BadResponse(f"response header {name!r} contains CR, LF or NUL")
        headers.append((name.lower(), value))
    return tuple(headers)


# A function answers with the same few header sets again and again: validate a
# set once, then find it by value (msgpack gives hashable tuples with use_list=False).
_HEADER_CACHE: dict[Any, tuple[tuple[str, str], ...]] = {}
_HEADER_CACHE_MAX = 4096
_HEADER_CACHE_MAX_BYTES = 4096


def decode_response(raw: bytes) -> Response:
    """Validate a guest's msgpack response map; anything off is a BadResponse."""
    try:
        data = msgpack.unpackb(raw, raw=False, strict_map_key=False, use_list=False)
    except Exception as exc:  # msgpack raises several unrelated types on bad input
        raise BadResponse(f"response is not valid msgpack ({type(exc).__name__}: {str(exc)[:100]})") from None
    if type(data) is not dict:
        raise BadResponse(f"response must be a msgpack map, got {type(data).__name__}")
    status = data.get("status", 200)
    if type(status) is not int or not 100 <= status <= 599:
        raise BadResponse(f"response status must be an integer from 100 to 599, got {status!r}"[:160])
    headers_in = data.get("headers") or ()
    try:
        headers = _HEADER_CACHE.get(headers_in)
    except TypeError:  # unhashable (a map inside): not a valid header list anyway
        headers = None
    if headers is None:
        headers = _check_headers(headers_in)
        if len(_HEADER_CACHE) < _HEADER_CACHE_MAX and len(raw) < _HEADER_CACHE_MAX_BYTES:
            _HEADER_CACHE[headers_in] = headers
    body = data.get("body", b"")
    if type(body) is bytes:
        pass
    elif type(body) is str:
        body = body.encode("utf-8")
    elif body is None:
        body = b""
    else:
        raise BadResponse(f"response body must be bin or str, got {type(body).__name__}")
    return Response(status, headers, body)


def call(native: NativeCall, request_bytes: bytes, max_response_bytes: int) -> Response:
    """Run one request through an instantiated handler module."""
    alloc = native.export(b"wasmhost_alloc", EXTERN_FUNC)
    handle = native.export(b"wasmhost_handle", EXTERN_FUNC)
    memory = native.export(b"memory", EXTERN_MEMORY)
    args = native.args
    length = len(request_bytes)
    set_i32(args, 0, length)
    native.call(alloc, 1)
    ptr = get_i32(args, 0)
    addr, size = native.memory_span(memory)
    if not write_memory(addr, size, ptr, request_bytes):
        raise BadResponse(f"wasmhost_alloc({length}) returned {ptr}, outside linear memory ({size} bytes)")
    set_i32(args, 0, ptr)
    set_i32(args, 1, length)
    native.call(handle, 2)
    packed = get_i64(args, 0)
    out_ptr, out_len = packed >> 32, packed & 0xFFFFFFFF
    if out_len > max_response_bytes:
        raise TooLarge(f"response of {out_len} bytes exceeds the limit of {max_response_bytes} bytes",
                       limit=max_response_bytes)
    addr, size = native.memory_span(memory)
    raw = read_memory(addr, size, out_ptr, out_len)
    if raw is None:
        raise BadResponse(f"response pointer {out_ptr} + length {out_len} is outside linear memory ({size} bytes)")
    return decode_response(raw)
