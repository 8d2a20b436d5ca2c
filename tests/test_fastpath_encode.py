"""The request encoders from raw fields (the C extension's and its Python twin,
`handler_codec.encode_fields`) write exactly the bytes of the reference encoding, for any
request, whether its text comes as str or as the server's raw bytes."""

from __future__ import annotations

import random

import pytest

from wasmhost import callpath
from wasmhost.abi.handler_codec import encode_fields, encode_request_py, packed_config
from wasmhost.models import Request

C_ENCODER = callpath.choose(True).encode_request
# Every raw-fields encoder there is here: the Python twin always, the C one when built (CI builds it).
ENCODERS = {"py": encode_fields, **({"c": C_ENCODER} if C_ENCODER is not None else {})}


def _text(r: random.Random) -> str:
    k = r.random()
    if k < 0.3:
        return "".join(r.choice("abc/%é☃ \t") for _ in range(r.randint(0, 40)))
    if k < 0.6:  # arbitrary bytes, kept as surrogates where they are not UTF-8
        return bytes(r.randint(0, 255) for _ in range(r.randint(0, 300))).decode("utf-8", "surrogateescape")
    if k < 0.8:  # every msgpack length class boundary
        return "x" * r.choice([0, 31, 32, 255, 256, 65535, 65536, 70000])
    return "\U0001F600" * r.randint(0, 10)


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_raw_field_encoders_match_the_reference_encoding(name: str) -> None:
    encode = ENCODERS[name]
    r = random.Random(1)
    for _ in range(600):
        headers = tuple((bytes(r.randint(0, 255) for _ in range(r.randint(1, 10))).decode("latin-1"), _text(r))
                        for _ in range(r.choice([0, 1, 3, 15, 16, 17])))
        request = Request(method=r.choice(["GET", "POST"]), path=_text(r), query=_text(r), headers=headers,
                          body=bytes(r.randint(0, 255) for _ in range(r.choice([0, 5, 255, 256, 70000]))))
        config = r.choice([{}, {"A": "b", "c.d": "é"}])
        expected = encode_request_py(request, config)
        assert encode(request.method, request.path, request.query, request.headers,
                      request.body) + packed_config(config) == expected
        # As the HTTP route passes it: the server's bytes (names Latin-1, the rest UTF-8 or not).
        raw = encode(request.method, request.path.encode("utf-8", "surrogateescape"),
                            request.query.encode("utf-8", "surrogateescape"),
                            [(k.encode("latin-1"), v.encode("utf-8", "surrogateescape")) for k, v in headers],
                            request.body)
        assert raw + packed_config(config) == expected


@pytest.mark.parametrize("raw", [b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe0\x80\x80", b"\xff",
                                 b"\xe2\x82", "€".encode(), "\U0010FFFF".encode()])
@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_utf8_validation_is_pythons(raw: bytes, name: str) -> None:
    text = raw.decode("utf-8", "surrogateescape")
    expected = encode_request_py(Request(path=text), {})
    assert ENCODERS[name]("GET", raw, b"", [], b"") + packed_config({}) == expected


@pytest.mark.skipif(C_ENCODER is None, reason="the C extension is not built")
def test_bad_inputs_raise_not_crash() -> None:
    with pytest.raises(TypeError):
        C_ENCODER("GET", "/", "", [(b"a",)], b"")
    with pytest.raises(TypeError):
        C_ENCODER("GET", "/", "", [(1, b"x")], b"")
    with pytest.raises(TypeError):
        C_ENCODER("GET", None, "", [], b"")
    with pytest.raises(TypeError):
        C_ENCODER("GET", "/", "", 5, b"")
