"""The C response decoder (_fastpath.decode_response) takes only responses the Python
decoder accepts, and builds the same values from them; everything else it leaves to Python."""

from __future__ import annotations

import random

import msgpack
import pytest

from wasmhost import callpath
from wasmhost.abi.handler_codec import SMALL_RESPONSE, decode_response, decode_response_py
from wasmhost.errors import BadResponse

decode_c = callpath.choose(True).decode_response
pytestmark = pytest.mark.skipif(decode_c is None, reason="the C extension is not built")

NAMES = ["content-type", "X-Custom", "x_y", "a b", "", "é", "x\r\n", "set-cookie", "A" * 5000, "~!#"]
VALUES = ["text/plain; charset=utf-8", "a\tb", "a\nb", "\x00", "\x7f", "é☃", "", "x" * 70000, "\x1f"]


def _pack_str_as_invalid_utf8() -> bytes:
    return b"\xa3\xff\xfe\xfd"  # a msgpack str whose bytes are not UTF-8


def _response(r: random.Random) -> bytes:
    k = r.random()
    if k < 0.05:
        return bytes(r.randint(0, 255) for _ in range(r.randint(0, 40)))
    fields: dict = {}
    if r.random() < 0.8:
        fields["status"] = r.choice([200, 201, 404, 599, 600, 199, 0, -1, True, 2.0, None, "200", 2 ** 40])
    if r.random() < 0.8:
        headers = [[r.choice(NAMES), r.choice(VALUES)] for _ in range(r.choice([0, 1, 2, 5]))]
        headers = [[n.encode() if r.random() < 0.2 else n, v.encode() if r.random() < 0.2 else v]
                   for n, v in headers]
        if r.random() < 0.05:
            headers = [["a", "b", "c"]]
        fields["headers"] = r.choice([headers] * 8 + [None, {}, "x", 0, False])
    if r.random() < 0.8:
        fields["body"] = r.choice([b"hi", "hé", None, 3, b"", b"x" * 70000, [b"a"]])
    if r.random() < 0.1:
        fields[r.choice(["other", b"status", 5])] = r.choice([1, {"a": []}, None])
    raw = msgpack.packb(fields, use_bin_type=True)
    k = r.random()
    if k < 0.05:
        raw += b"\x00"
    elif k < 0.1:
        raw = raw[:r.randint(0, len(raw))]
    elif k < 0.13 and "body" in fields:  # the body key repeated
        raw = bytes([raw[0] + 1]) + raw[1:] + msgpack.packb("body") + msgpack.packb(b"again")
    elif k < 0.16:
        raw = b"\x81\xa4body" + _pack_str_as_invalid_utf8()
    elif k < 0.2:
        raw = b"\x81\xa6status\xd1\x01\x90"  # 400 as int16
    return raw


def test_c_decoder_agrees_with_the_reference() -> None:
    r = random.Random(7)
    taken = 0
    for _ in range(4000):
        raw = _response(r)
        if len(raw) > SMALL_RESPONSE:  # decode_response uses the C decoder for small responses only
            raw = raw[:SMALL_RESPONSE]
        plain = decode_c(raw)
        try:
            expected = decode_response_py(raw)
        except BadResponse as exc:
            assert plain is None, (raw[:100], exc)
            continue
        if plain is not None:
            taken += 1
            assert plain == (expected.status, expected.headers, expected.body), raw[:200]
            assert decode_response(raw, decode_c) == expected
    assert taken > 300


def test_common_response() -> None:
    raw = msgpack.packb({"status": 200, "headers": [["Content-Type", "text/plain"]], "body": b"hi"},
                        use_bin_type=True)
    assert decode_c(raw) == (200, (("content-type", "text/plain"),), b"hi")
    assert decode_c(b"\x80") == (200, (), b"")
