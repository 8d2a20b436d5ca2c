"""The pure half of the `handler` interface: the msgpack request it writes, the response it reads.

The request map and the response rules are those of guest-sdk/ABI.md §1. Nothing here runs
wasm (`handler.py` does), so every rule can be tested and fuzzed alone. Everything a guest
returns is untrusted: types, header bytes, sizes; a decoder does bounded work whatever it gets.
The C extension has faster twins of the encoder and of the decoder's common case
(csrc/fastpath_codec.c); tests/test_fastpath_encode.py and test_fastpath_decode.py hold them
to these.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping, Sequence

import msgpack

from ..errors import BadResponse
from ..models import Request, Response

TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # used with fullmatch: "$" would allow a final LF
BAD_VALUE_CHAR = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # controls other than TAB break HTTP
MAX_HEADERS = 1000
MAX_KEYS = 64


# decode_response(raw) of the C extension: (status, headers, body) of a response in the common
# shape (status, headers and body only, simple types), else None for the Python decoder to decide.
CDecoder = Callable[[bytes], "tuple[int, tuple[tuple[str, str], ...], bytes] | None"]
_CONFIG_KEY = b"\xa6config"
_NO_CONFIG = _CONFIG_KEY + b"\x80"


def packed_config(config: Mapping[str, str]) -> bytes:
    """The request map's last entry, `config`, for appending to `encode_fields`' output."""
    return _CONFIG_KEY + msgpack.packb(dict(config), use_bin_type=True) if config else _NO_CONFIG


def encode_fields(method: str | bytes, path: str | bytes, query: str | bytes,
                  headers: Sequence[tuple[str | bytes, str | bytes]], body: bytes) -> bytes:
    """The request map without its last entry, `config` (append `packed_config`), from the
    fields as the server has them: text as str, or as bytes (header names as Latin-1, the rest
    as UTF-8 where it is valid, else sent as bin). The bytes of `_fastpath.encode_request`."""
    packb = msgpack.packb
    return b"".join((
        b"\x86\xa6method", packb(_text_of(method), use_bin_type=True),
        b"\xa4path", packb(_text_of(path), use_bin_type=True),
        b"\xa5query", packb(_text_of(query), use_bin_type=True),
        b"\xa7headers", packb([[_text_of(k, latin1=True), _text_of(v)] for k, v in headers], use_bin_type=True),
        b"\xa4body", packb(bytes(body), use_bin_type=True)))


def _text_of(value: str | bytes, latin1: bool = False) -> str | bytes:
    """Text as the guest gets it: str, or bin for bytes that are not UTF-8 (a str holding
    surrogates is such bytes, kept by surrogateescape)."""
    if isinstance(value, bytes):
        if latin1:
            return value.decode("latin-1")
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape")


def encode_request_py(request: Request, config: Mapping[str, str]) -> bytes:
    """The reference encoding (and the one used without the C extension)."""
    fields = {
        "method": request.method,
        "path": request.path,
        "query": request.query,
        "headers": [list(pair) for pair in request.headers],
        "body": request.body,
        "config": dict(config),
    }
    try:
        return msgpack.packb(fields, use_bin_type=True)
    except UnicodeEncodeError:
        # Request bytes that are not UTF-8 (kept as surrogates) go to the guest as bin.
        def raw(text: str) -> str | bytes:
            try:
                text.encode("utf-8")
                return text
            except UnicodeEncodeError:
                return text.encode("utf-8", "surrogateescape")
        fields.update(path=raw(request.path), query=raw(request.query),
                      headers=[[raw(k), raw(v)] for k, v in request.headers])
        return msgpack.packb(fields, use_bin_type=True)


def _text(value: Any, what: str) -> str:
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise BadResponse(f"{what} is not valid UTF-8") from None
    if not isinstance(value, str):
        raise BadResponse(f"{what} must be a string, got {type(value).__name__}")
    return value


def _check_header(name: Any, value: Any) -> tuple[str, str]:
    name, value = _text(name, "header name"), _text(value, "header value")
    if not TOKEN.fullmatch(name):
        raise BadResponse(f"invalid response header name {name[:60]!r}")
    if BAD_VALUE_CHAR.search(value):
        raise BadResponse(f"response header {name!r} contains a control character (CR, LF, NUL, ...)")
    return name.lower(), value


# Headers that mean one thing: two of them make an answer whose meaning depends on which one a
# client believes (a browser may sniff content between two types, follow either Location).
SINGLE_VALUED = ("content-type", "location")


def _check_header_set(headers: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """Refuse a second Content-Type or Location (the names are lower-case here)."""
    for single in SINGLE_VALUED:
        if sum(1 for name, _ in headers if name == single) > 1:
            raise BadResponse(f"response has more than one {single!r} header; it may have one")
    return headers


# A function answers with the same few header sets again and again: validate a
# set once, then find it by value.
_HEADER_CACHE: dict[Any, tuple[tuple[str, str], ...]] = {}
_HEADER_CACHE_MAX = 4096
_HEADER_CACHE_MAX_BYTES = 4096


def _msgpack_kinds() -> tuple[str, ...]:
    """The kind of msgpack value that each first byte starts (0xc1 is never used)."""
    kinds = ["invalid"] * 256
    spans = [((0x00, 0x7f), "int"), ((0x80, 0x8f), "map"), ((0x90, 0x9f), "array"), ((0xa0, 0xbf), "str"),
             ((0xc0, 0xc0), "nil"), ((0xc2, 0xc3), "bool"), ((0xc4, 0xc6), "bin"), ((0xc7, 0xc9), "ext"),
             ((0xca, 0xcb), "float"), ((0xcc, 0xd3), "int"), ((0xd4, 0xd8), "ext"), ((0xd9, 0xdb), "str"),
             ((0xdc, 0xdd), "array"), ((0xde, 0xdf), "map"), ((0xe0, 0xff), "int")]
    for (first, last), kind in spans:
        kinds[first:last + 1] = [kind] * (last + 1 - first)
    return tuple(kinds)


_KIND = _msgpack_kinds()
_BUILDS = frozenset(("map", "array", "ext"))  # kinds whose size in objects is not bounded by their bytes
_TEXT_KINDS = frozenset(("str", "bin"))


class _Stream:
    """A msgpack.Unpacker over `raw` that can say what kind of value comes next, from its first
    byte, before anything is built."""

    __slots__ = ("raw", "end", "unpacker")

    def __init__(self, raw: bytes) -> None:
        self.raw, self.end = raw, len(raw)
        self.unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=max(self.end, 1))
        self.unpacker.feed(raw)

    def kind(self) -> str:
        pos = self.unpacker.tell()
        if pos >= self.end:
            raise msgpack.OutOfData
        return _KIND[self.raw[pos]]

    def scalar(self, refusal: str) -> Any:
        """The next value if it is not a map, array or ext; else that value skipped unbuilt and a
        BadResponse (refusal + its kind) returned in its place, to be raised unless a later entry
        with the same key replaces it (the last one wins, as in the small decoder's dict)."""
        kind = self.kind()
        if kind in _BUILDS:
            self.unpacker.skip()
            return BadResponse(f"{refusal}, got a msgpack {kind}")
        return self.unpacker.unpack()


def _read_headers(stream: _Stream) -> tuple[tuple[str, str], ...]:
    kind, unpacker = stream.kind, stream.unpacker
    k = kind()
    if k == "nil":  # as in the small decoder: only nil means "no headers"
        unpacker.skip()
        return ()
    if k != "array":
        raise BadResponse("response headers must be an array of [name, value] pairs")
    count = unpacker.read_array_header()
    if count > MAX_HEADERS:
        raise BadResponse(f"response has {count} headers; at most {MAX_HEADERS} are allowed")
    pairs = []
    for _ in range(count):
        if kind() != "array" or unpacker.read_array_header() != 2:
            raise BadResponse("each response header must be a [name, value] pair")
        k = kind()
        if k not in _TEXT_KINDS:
            raise BadResponse(f"header name must be a string, got a msgpack {k}")
        name = unpacker.unpack()
        k = kind()
        if k not in _TEXT_KINDS:
            raise BadResponse(f"header value must be a string, got a msgpack {k}")
        pairs.append((name, unpacker.unpack()))
    key = tuple(pairs)
    headers = _HEADER_CACHE.get(key)
    if headers is None:
        headers = _check_header_set(tuple(_check_header(n, v) for n, v in pairs))
        if len(_HEADER_CACHE) < _HEADER_CACHE_MAX and sum(len(n) + len(v) for n, v in pairs) < _HEADER_CACHE_MAX_BYTES:
            _HEADER_CACHE[key] = headers
    return headers


SMALL_RESPONSE = 16 * 1024  # at most ~16 K objects however it is packed: decode it in one call


def decode_response(raw: bytes, c_decoder: CDecoder | None = None) -> Response:
    """Validate a guest's msgpack response map; anything off is a BadResponse.

    A large response is decoded streaming: only `status`, `headers` and `body`
    become Python objects, each only after its first byte says it is not a map,
    array or ext, and other keys are skipped without building anything, so a
    response cannot make the host allocate gigabytes (16 MB of empty maps would
    be 16 million dicts). A small one is decoded in one C call. The common
    shape (status, headers, body and nothing else) is decoded by `c_decoder` when the
    call path has one (the C extension's), which hands everything else to these.
    """
    if c_decoder is not None and len(raw) <= SMALL_RESPONSE:
        decoded = c_decoder(raw)
        if decoded is not None:
            return Response(*decoded)
    return decode_response_py(raw)


def decode_response_py(raw: bytes) -> Response:
    """The reference decoder (and the one for anything the C decoder does not take)."""
    if len(raw) <= SMALL_RESPONSE:
        return _decode_small(raw)
    return _decode_streaming(raw)


def _decode_small(raw: bytes) -> Response:
    try:
        data = msgpack.unpackb(raw, raw=False, strict_map_key=False, use_list=False)
    except Exception as exc:  # msgpack raises several unrelated types on bad input
        raise BadResponse(f"response is not valid msgpack ({type(exc).__name__}: {str(exc)[:100]})") from None
    if type(data) is not dict:
        raise BadResponse("response must be a msgpack map")
    headers_in = data.get("headers")
    if headers_in is None:  # only nil (or no key) means "no headers": false, 0, "", {} are refused below
        headers_in = ()
    try:
        headers = _HEADER_CACHE.get(headers_in)
    except TypeError:  # unhashable (a map inside): not a valid header list anyway
        headers = None
    if headers is None:
        if not isinstance(headers_in, tuple):
            raise BadResponse("response headers must be an array of [name, value] pairs")
        if len(headers_in) > MAX_HEADERS:
            raise BadResponse(f"response has {len(headers_in)} headers; at most {MAX_HEADERS} are allowed")
        for pair in headers_in:
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise BadResponse("each response header must be a [name, value] pair")
        headers = _check_header_set(tuple(_check_header(n, v) for n, v in headers_in))
        if len(_HEADER_CACHE) < _HEADER_CACHE_MAX and len(raw) < _HEADER_CACHE_MAX_BYTES:
            _HEADER_CACHE[headers_in] = headers
    return _finish(data.get("status", 200), headers, data.get("body", b""))


def _decode_streaming(raw: bytes) -> Response:
    """Look at each value's first byte before building it: a map, array or ext where `status`,
    `body` or a header name/value belongs is refused without being built, and a key that is not
    one of ours (or not a str at all) is skipped with its value (`Unpacker.skip` walks the
    structure in C, depth-limited, building nothing). The map must end exactly where `raw` ends.
    A repeated key's last value wins, as in the small decoder's dict: an earlier wrong one is no
    error, so `headers` is only located in the loop and decoded, the last one, after it."""
    stream = _Stream(raw)
    unpacker = stream.unpacker
    status, headers, body = 200, (), b""
    headers_at = None
    try:
        if not raw or stream.kind() != "map":
            raise BadResponse("response must be a msgpack map")
        count = unpacker.read_map_header()
        if count > MAX_KEYS:
            raise BadResponse(f"response map has {count} keys; at most {MAX_KEYS} are allowed")
        for _ in range(count):
            if stream.kind() != "str":  # cannot be status, headers or body
                unpacker.skip()
                unpacker.skip()
                continue
            key = unpacker.unpack()
            if key == "status":
                status = stream.scalar("response status must be an integer from 200 to 599")
            elif key == "headers":
                begin = unpacker.tell()
                unpacker.skip()
                headers_at = slice(begin, unpacker.tell())
            elif key == "body":
                body = stream.scalar("response body must be bin or str")
            else:
                unpacker.skip()
        if unpacker.tell() != len(raw):
            raise BadResponse("response has extra bytes after the msgpack map")
        if headers_at is not None:
            headers = _read_headers(_Stream(memoryview(raw)[headers_at]))
    except msgpack.OutOfData:
        raise BadResponse("response is truncated: it ends inside its msgpack map") from None
    except BadResponse:
        raise
    except Exception as exc:  # msgpack raises several unrelated types on bad input
        raise BadResponse(f"response is not valid msgpack ({type(exc).__name__}: {str(exc)[:100]})") from None
    for value in (status, body):
        if type(value) is BadResponse:
            raise value
    return _finish(status, headers, body)


def _finish(status: Any, headers: tuple[tuple[str, str], ...], body: Any) -> Response:
    if type(status) is not int or not 200 <= status <= 599:
        raise BadResponse(f"response status must be an integer from 200 to 599, got {status!r}"[:160])
    if type(body) is bytes:
        pass
    elif type(body) is str:
        body = body.encode("utf-8")
    elif body is None:
        body = b""
    else:
        raise BadResponse(f"response body must be bin or str, got {type(body).__name__}")
    return Response(status, headers, body)
