"""Property tests (hypothesis) of the two guest interfaces' untrusted-input handling.

WAGI output (abi/cgi.parse_output): tests/test_cgi.py already fuzzes arbitrary bytes and a plain
round trip; this file adds generated header injection, repeated headers with Status/Location
interleaved, UTF-8 values, bodies that look like headers, and the header-section limits.

handler ABI (abi/handler): arbitrary guest responses give a Response or a classified
`bad_response`, never another exception and never an allocation far out of proportion to the
response; responses built from strategies decode to exactly their values in every decoder (C,
small, streaming); requests with arbitrary bytes encode to the map guest-sdk/ABI.md describes.
"""

from __future__ import annotations

import tracemalloc

import msgpack
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from wasmhost import callpath
from wasmhost.abi import cgi
from wasmhost.abi import handler_codec as handler
from wasmhost.abi.cgi import MAX_HEADER_BYTES, MAX_HEADER_LINES, parse_output
from wasmhost.abi.handler_codec import (SMALL_RESPONSE, decode_response, decode_response_py, encode_fields,
                                        encode_request_py, packed_config)

_C = callpath.choose(True)
decode_c, encode_fields_c = _C.decode_response, _C.encode_request
from wasmhost.errors import BadResponse, WasmhostError
from wasmhost.models import Request, Response

# ----------------------------------------------------------------------------- WAGI output

_TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_names = st.text(alphabet=_TCHARS, min_size=1, max_size=16).filter(
    lambda n: n.lower() not in ("status", "content-type", "location") and n.lower() not in cgi._FRAMING_RESPONSE_HEADERS)
# Any Unicode text without controls (other than TAB) or surrogates, trimmed as the parser trims.
_value_text = st.text(st.characters(blacklist_categories=("Cs", "Cc"), whitelist_characters="\t"),
                      max_size=30).map(lambda v: v.strip(" \t"))


def _clean(out: Response) -> None:
    assert 200 <= out.status <= 599
    for name, value in out.headers:
        assert cgi._TOKEN.fullmatch(name) and name == name.lower()
        assert name != "status" and name not in cgi._FRAMING_RESPONSE_HEADERS
        assert not cgi._BAD_VALUE_CHAR.search(value)


@given(
    headers=st.lists(st.tuples(st.sampled_from(["Set-Cookie", "set-cookie", "X-A", "Vary"]) | _names, _value_text),
                     max_size=20),
    content_type=st.booleans(), location=st.none() | _value_text.filter(bool),
    status=st.none() | st.integers(200, 599), status_at=st.integers(0, 30),
    reason=st.sampled_from(["", " OK", " Not Found", "\tx y z"]),
    eol=st.sampled_from([b"\n", b"\r\n"]),
    body=st.binary(max_size=300) | st.sampled_from([b"Status: 500\n\n", b"\r\n\r\nX: y\n", b"\n", b"\r"]),
)
def test_generated_cgi_output_round_trips(headers, content_type, location, status, status_at, reason, eol,
                                          body) -> None:
    lines = list(headers)
    if content_type:
        lines.insert(0, ("Content-Type", "text/html; charset=utf-8"))
    if location is not None:
        lines.insert(len(lines) // 2, ("Location", location))
    assume(content_type or location is not None or status is not None)
    raw_lines = [f"{n}: {v}".encode() for n, v in lines]
    if status is not None:
        raw_lines.insert(min(status_at, len(raw_lines)), f"Status: {status}{reason}".encode())
    out = parse_output(b"".join(line + eol for line in raw_lines) + eol + body)
    assert out.body == body
    assert out.headers == tuple((n.lower(), v) for n, v in lines)
    expected_status = status if status is not None else (302 if location is not None else 200)
    assert out.status == expected_status
    _clean(out)


_BAD = st.sampled_from(["\r", "\n", "\0", "\x01", "\x0b", "\x0c", "\x1b", "\x7f"])


@given(before=_value_text.filter(bool), bad=_BAD, after=_value_text.filter(bool),
       name=_names, first=st.booleans())
def test_header_injection_is_refused(before: str, bad: str, after: str, name: str, first: bool) -> None:
    """A control character inside a header value (CR, LF, NUL, ...) never reaches the response:
    the output is refused, or a bare LF splits it into a line that must itself be a valid header."""
    evil = f"{name}: {before}{bad}{after}".encode()
    lines = [evil, b"Content-Type: text/plain"] if first else [b"Content-Type: text/plain", evil]
    try:
        out = parse_output(b"\n".join(lines) + b"\n\nbody")
    except BadResponse:
        return
    # Only an LF can make the output parse: it ends the line, and `after` became a line of its own
    # (which parsed as `name: value`). The value before it is then cut exactly there.
    assert bad == "\n"
    _clean(out)
    assert (name.lower(), before) in out.headers


@given(bad=_BAD, where=st.sampled_from(["name", "value"]))
def test_injection_into_status_and_location_is_refused(bad: str, where: str) -> None:
    assume(bad != "\n")
    line = f"Status: 404{bad}Set-Cookie: x" if where == "value" else f"Loca{bad}tion: /x"
    with pytest.raises(BadResponse):
        parse_output(f"Content-Type: a/b\n{line}\n\n".encode())


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(size=st.integers(MAX_HEADER_BYTES - 40, MAX_HEADER_BYTES + 40), lines=st.integers(1, 4),
       eol=st.sampled_from([b"\n", b"\r\n"]), body=st.binary(max_size=20))
def test_header_section_limit_is_exact(size: int, lines: int, eol: bytes, body: bytes) -> None:
    """A header section of `size` bytes (line ends included, the blank line not) is accepted
    exactly when size <= MAX_HEADER_BYTES, whatever the line layout."""
    head = [b"Content-Type: a/b"] + [b"X-P: "] * (lines - 1)
    used = sum(len(h) + len(eol) for h in head)
    head[-1] += b"p" * (size - used)
    section = b"".join(h + eol for h in head)
    assert len(section) == size
    data = section + eol + body
    if size <= MAX_HEADER_BYTES:
        out = parse_output(data)
        assert out.body == body and len(out.headers) == lines
    else:
        with pytest.raises(BadResponse, match="limited"):
            parse_output(data)


@settings(max_examples=20)
@given(count=st.integers(MAX_HEADER_LINES - 3, MAX_HEADER_LINES + 3))
def test_header_line_limit_is_exact(count: int) -> None:
    data = b"Content-Type: a/b\n" + b"Set-Cookie: c\n" * (count - 1) + b"\n"
    if count <= MAX_HEADER_LINES:
        assert len(parse_output(data).headers) == count
    else:
        with pytest.raises(BadResponse, match="header lines"):
            parse_output(data)


@settings(max_examples=300)
@given(size=st.integers(MAX_HEADER_BYTES - 100, MAX_HEADER_BYTES + 100), fill=st.binary(min_size=1, max_size=3),
       tail=st.binary(max_size=50))
def test_long_outputs_give_a_response_or_bad_response(size: int, fill: bytes, tail: bytes) -> None:
    prefix = (fill * (size // len(fill) + 1))[:size]
    try:
        _clean(parse_output(b"Content-Type: x\n" + prefix + tail))
    except BadResponse:
        pass


# ----------------------------------------------------------------------------- handler responses

# msgpack values of every type, nested a little.
_leaf = (st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats(allow_nan=False)
         | st.text(max_size=20) | st.binary(max_size=20))
_any = st.recursive(_leaf, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8) | st.integers(-2**63, 2**64 - 1), inner, max_size=4), max_leaves=12)
_hname = st.text(alphabet=_TCHARS, min_size=1, max_size=20)
_hvalue = st.text(st.characters(blacklist_categories=("Cs", "Cc"), whitelist_characters="\t"), max_size=40)


def _decoders(raw: bytes):
    """Every decoder that would see `raw`, by name: the public one, the reference, and the small
    and streaming halves of the reference (each on any size, so both are fuzzed on every input)."""
    out = {"decode_response": lambda r: decode_response(r, decode_c), "py": decode_response_py,
           "small": handler._decode_small, "streaming": handler._decode_streaming}
    if decode_c is not None and len(raw) <= SMALL_RESPONSE:
        out["c"] = lambda r: (lambda t: None if t is None else Response(*t))(decode_c(r))
    return out


def _outcome(fn, raw: bytes):
    try:
        out = fn(raw)
    except BadResponse as exc:
        assert exc.code == "bad_response"
        return "bad_response"
    except WasmhostError as exc:  # a classified error of another kind would also be acceptable
        assert exc.code == "too_large", exc
        return "too_large"
    if out is not None:
        assert isinstance(out, Response)
        assert type(out.status) is int and 200 <= out.status <= 599
        assert type(out.body) is bytes
        for name, value in out.headers:
            assert type(name) is str and type(value) is str
            assert handler.TOKEN.fullmatch(name) and name == name.lower()
            assert not handler.BAD_VALUE_CHAR.search(value)
    return out


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_a_response_or_bad_response(raw: bytes) -> None:
    for name, fn in _decoders(raw).items():
        _outcome(fn, raw)


def _map_bytes(entries: list[tuple[object, object]]) -> bytes:
    """A msgpack map with these entries in this order (repeats allowed)."""
    n = len(entries)
    head = bytes([0x80 | n]) if n < 16 else b"\xde" + n.to_bytes(2, "big")
    return head + b"".join(msgpack.packb(k, use_bin_type=True) + msgpack.packb(v, use_bin_type=True)
                           for k, v in entries)


_resp_entries = st.lists(st.tuples(
    st.sampled_from(["status", "headers", "body", "other"]) | _leaf,
    st.one_of(st.integers(100, 700), st.sampled_from([200, 404]),
              st.lists(st.tuples(_hname | st.binary(max_size=5), _hvalue | st.binary(max_size=5)), max_size=3),
              st.lists(st.lists(_hname, max_size=3), max_size=2),
              _any)), max_size=6)


@settings(max_examples=500)
@given(_resp_entries, st.sampled_from([b"", b"\xc0", b"\x81"]))
def test_response_shaped_maps_give_a_response_or_bad_response(entries, trailer: bytes) -> None:
    raw = _map_bytes(entries) + trailer
    outcomes = {name: _outcome(fn, raw) for name, fn in _decoders(raw).items()}
    # The public decoder and the reference agree; the C decoder, when it answers, agrees too.
    assert outcomes["decode_response"] == outcomes["py"]
    if outcomes.get("c") is not None:
        assert outcomes["c"] == outcomes["py"]


@st.composite
def _responses(draw):
    status = draw(st.none() | st.integers(200, 599))
    headers = draw(st.none() | st.lists(st.tuples(_hname, _hvalue), max_size=8))
    body = draw(st.none() | st.binary(max_size=200) | st.text(max_size=50))
    extra = draw(st.dictionaries(st.text(max_size=6).filter(lambda k: k not in ("status", "headers", "body")),
                                 _any, max_size=3))
    as_bin = draw(st.booleans())
    fields = dict(extra)
    if status is not None:
        fields["status"] = status
    if headers is not None:
        fields["headers"] = [[n.encode(), v.encode()] if as_bin else [n, v] for n, v in headers]
    if body is not None:
        fields["body"] = body
    order = draw(st.permutations(list(fields)))
    return {k: fields[k] for k in order}, status, headers, body


@settings(max_examples=300)
@given(_responses(), st.sampled_from([0, SMALL_RESPONSE + 1]))
def test_generated_responses_decode_to_exactly_their_values(resp, pad_to: int) -> None:
    fields, status, headers, body = resp
    if pad_to:  # big enough for the streaming decoder: pad with an ignored key
        fields = {**fields, "zz-pad": b"p" * pad_to}
    raw = msgpack.packb(fields, use_bin_type=True)
    expected = Response(200 if status is None else status,
                        tuple((n.lower(), v) for n, v in headers or ()),
                        body.encode() if isinstance(body, str) else (body or b""))
    for name, fn in _decoders(raw).items():
        got = fn(raw)
        if name == "c" and got is None:
            continue  # extra keys: the C decoder leaves those to Python
        assert got == expected, name


def _nested_bomb(n: int, kind: str) -> bytes:
    """n empty containers in one array: n bytes that become n Python objects when built."""
    head = b"\xdd" + n.to_bytes(4, "big")
    return head + (b"\x80" if kind == "maps" else b"\x90") * n


_BOMB_N = 300_000


@pytest.mark.parametrize("where", ["unknown_value", "unknown_key", "status", "body", "header_name"])
@pytest.mark.parametrize("kind", ["maps", "arrays"])
def test_no_allocation_out_of_proportion_to_the_response(where: str, kind: str) -> None:
    """A response of N bytes may not make the host build ~N Python objects (at 16 MiB, the
    default limit, that is over a gigabyte): the peak Python allocation while decoding stays
    within a few times the response size.

    Found by this test: `_decode_streaming` (responses over SMALL_RESPONSE) called
    `unpacker.unpack()` for every key and for the `status`, `body` and header name/value values,
    which built whatever container the guest put there before the type check rejected it. Now it
    looks at the type byte first (`raw[unpacker.tell()]`): a map, array or ext where one of those
    values belongs is refused unbuilt, and a key that is not a str is skipped with its value
    (`unpacker.skip()`, which builds nothing).
    """
    bomb = _nested_bomb(_BOMB_N, kind)
    raw = {
        "unknown_value": b"\x82\xa6status\xcc\xc8\xa5other" + bomb,
        "unknown_key": b"\x82\xa6status\xcc\xc8" + bomb + b"\x00",
        "status": b"\x81\xa6status" + bomb,
        "body": b"\x81\xa4body" + bomb,
        "header_name": b"\x81\xa7headers\x91\x92" + bomb + b"\xa1x",
    }[where]
    tracemalloc.start()
    try:
        try:
            decode_response(raw)
        except BadResponse:
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= 4 * len(raw) + (1 << 20), f"{peak} bytes allocated for a {len(raw)}-byte response"


# ----------------------------------------------------------------------------- handler requests

# Text as the server may hand it over: any bytes, not necessarily UTF-8 (kept as surrogates).
_raw_text = st.one_of(st.binary(max_size=60).map(lambda b: b.decode("utf-8", "surrogateescape")),
                      st.text(st.characters(blacklist_categories=("Cs",)), max_size=40),
                      st.sampled_from(["", "/", "/a%20b", "/a%2Fb", "x" * 31, "x" * 32, "é" * 200]))
_header_name = st.binary(min_size=1, max_size=12).map(lambda b: b.decode("latin-1"))
_config_key = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,10}", fullmatch=True)


def _wire(text: str) -> str | bytes:
    """What the ABI promises for a text field: str when valid UTF-8, else bin of the bytes."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape")


@settings(max_examples=500)
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "PROPFIND"]),
       path=_raw_text, query=_raw_text,
       headers=st.lists(st.tuples(_header_name, _raw_text), max_size=20),
       body=st.binary(max_size=300), config=st.dictionaries(_config_key, st.text(max_size=20), max_size=5))
def test_requests_encode_to_the_documented_map(method, path, query, headers, body, config) -> None:
    request = Request(method=method, path=path, query=query, headers=tuple(headers), body=body)
    expected_map = {"method": method, "path": _wire(path), "query": _wire(query),
                    "headers": [[_wire(n), _wire(v)] for n, v in headers], "body": body, "config": config}
    encodings = {"py": encode_request_py(request, config),
                 "fields": encode_fields(method, path, query, headers, body) + packed_config(config)}
    for name, encode in (("py-bytes", encode_fields), ("c-bytes", encode_fields_c)):
        if encode is not None:  # as the HTTP route passes it: the server's raw bytes
            encodings[name] = encode(
                method, path.encode("utf-8", "surrogateescape"), query.encode("utf-8", "surrogateescape"),
                [(n.encode("latin-1"), v.encode("utf-8", "surrogateescape")) for n, v in headers],
                body) + packed_config(config)
    for name, raw in encodings.items():
        decoded = msgpack.unpackb(raw, raw=False, strict_map_key=False)
        assert list(decoded) == ["method", "path", "query", "headers", "body", "config"], name
        assert decoded == expected_map, name
        # Types as the ABI table says: str or bin for text, bin for the body, pairs for headers.
        assert type(decoded["body"]) is bytes
        assert all(len(pair) == 2 for pair in decoded["headers"])
        assert encodings["py"] == raw, name  # and every encoder writes the same bytes


@settings(max_examples=100)
@given(_responses(), st.integers(1, 64) | st.floats(0.0, 1.0), st.booleans())
@example(({"status": 201}, 201, None, None), 1, True)
def test_a_truncated_response_is_refused(resp, where, big: bool) -> None:
    """Every proper prefix of a response map is refused (bad_response), whatever its size.

    Found by fuzzing: `_decode_streaming` took msgpack.OutOfData inside the map as the normal end,
    so a response cut short (a guest returning a length shorter than its map) was accepted with the
    fields read so far. Now OutOfData inside the map is 'response is truncated', and the map must
    end exactly where the response does."""
    fields = resp[0]
    if big:
        fields = {**fields, "zz-pad": b"p" * (SMALL_RESPONSE + 1)}
    raw = msgpack.packb(fields, use_bin_type=True)
    cut = raw[:max(0, len(raw) - where)] if isinstance(where, int) else raw[:int(where * (len(raw) - 1))]
    with pytest.raises(BadResponse):
        decode_response(cut)


@given(st.sampled_from([None, False, 0, "", {}, b"", 0.0]), st.binary(max_size=50))
def test_small_and_streaming_decoders_agree_on_headers(headers, body: bytes) -> None:
    """Only nil means "no headers"; false, 0, "", {} ... are refused by both decoders.

    Found by fuzzing: the small decoder took any falsy `headers` as none (`data.get('headers') or
    ()`), the streaming one refused them (and nil too) with the misleading 'response must be a
    msgpack map', so the same response passed or failed by its size."""
    raw = msgpack.packb({"headers": headers, "body": body}, use_bin_type=True)
    small, streaming = _outcome(handler._decode_small, raw), _outcome(handler._decode_streaming, raw)
    assert small == streaming
    if headers is not None:
        assert small == "bad_response"
