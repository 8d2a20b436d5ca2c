"""Hostile modules found by review, on both invocation paths (C and ctypes)."""

from __future__ import annotations

import msgpack
import pytest

from wasmhost.abi.handler_codec import decode_response
from wasmhost.errors import BadRequest, BadResponse, InvalidModule, Timeout
from wasmhost.host import Host
from wasmhost.models import Request, Route

from .conftest import small_settings

HELLO = Request(path="/", script_name="/fn/x")


@pytest.fixture(params=["c", "ctypes"])
def host(request, tmp_path):
    with Host(small_settings(tmp_path / "data", fastpath=request.param == "c")) as h:
        assert h.sandbox.path == request.param
        yield h


def test_route_to_an_export_with_the_wrong_signature_is_refused_at_deploy(host: Host, wasm) -> None:
    with pytest.raises(InvalidModule) as info:
        host.deploy("smash", wasm("hostile/bad_route_signature"))
    assert "'boom'" in info.value.message and "() -> ()" in info.value.message
    assert host.list() == []


def test_wrong_signature_is_caught_at_call_time_too(host: Host, wasm) -> None:
    """Defence in depth: even if a bad route reached the registry, the call must
    fail cleanly instead of crashing the process (an unchecked call with the
    wrong arity corrupts memory)."""
    from wasmhost.compiler import compile_module
    from wasmhost.models import FunctionVersion
    module = compile_module(host.wasm, wasm("hostile/bad_route_signature"))
    prepared = host.cache.prepare("forged", module, 0)
    forged = FunctionVersion("smash", 1, "forged", 0, "wagi", tuple(f"{i.module}.{i.name}" for i in module.imports),
                             tuple(e.name for e in module.exports), host.settings.default_limits(),
                             routes=(Route("/x", "boom", False),))
    for _ in range(3):
        inv = host.sandbox.run(prepared, forged, Request(path="/x", script_name="/fn/smash"))
        assert isinstance(inv.error, BadResponse), inv.error
        assert "boom" in inv.error.message
    host.deploy("hello", wasm("hello_handler"))
    assert host.invoke("hello", HELLO).ok  # the process is alive and well


def test_entrypoint_must_be_a_function(host: Host, wasm) -> None:
    for entry in ("memory", "no_such_export"):
        with pytest.raises(InvalidModule):
            host.deploy("entry", wasm("wagi_routes"), entrypoint=entry)
    with pytest.raises(BadRequest):
        host.deploy("entry", wasm("wagi_routes"), entrypoint="_start\n")


def test_sleep_cannot_outlast_the_deadline(host: Host, wasm) -> None:
    host.deploy("sleeper", wasm("hostile/sleeper"), limits={"timeout_ms": 300})
    inv = host.invoke("sleeper", HELLO)
    assert isinstance(inv.error, Timeout), inv.error
    assert inv.timings.run < 25  # it did not sleep its 30 s (a bound, not a speed figure)


def test_sleep_within_the_deadline_works(host: Host, wasm) -> None:
    host.deploy("nap", wasm("nap_wagi"))
    inv = host.invoke("nap", HELLO)
    assert inv.ok, inv.error
    assert inv.response.body == b"awake\n"
    assert inv.timings.run >= 0.019  # the 20 ms were slept, not skipped


def test_iovec_flood_copies_no_more_than_the_log_cap(host: Host, wasm) -> None:
    host.deploy("iovec", wasm("hostile/iovec_flood"))
    inv = host.invoke("iovec", HELLO)
    assert inv.ok, inv.error
    assert inv.logs_truncated
    assert len("\n".join(inv.logs).encode("utf-8", "replace")) <= host.settings.max_log_bytes * 3


def test_control_characters_in_response_headers(host: Host, wasm) -> None:
    host.deploy("ctl", wasm("hostile/control_char_header"))
    inv = host.invoke("ctl", HELLO)
    assert isinstance(inv.error, BadResponse) and "control character" in inv.error.message


@pytest.mark.parametrize("response,fragment", [
    ({"status": 100}, "200 to 599"),
    ({"status": 199}, "200 to 599"),
    ({"headers": [["x-a\n", "b"]]}, "header name"),
    ({"headers": [["x-a", "a\x7fb"]]}, "control character"),
    ({"headers": [["x-a", "a\x1bb"]]}, "control character"),
    ({"headers": [["Content-Type", "text/plain"], ["content-type", "text/html"]]}, "more than one 'content-type'"),
    ({"headers": [["location", "/a"], ["x", "y"], ["Location", "/b"]]}, "more than one 'location'"),
])
def test_response_rules(response, fragment) -> None:
    with pytest.raises(BadResponse) as info:
        decode_response(msgpack.packb(response))
    assert fragment in info.value.message
    from wasmhost.abi.handler_codec import _decode_streaming  # every decoder refuses it
    decode_c = __import__("wasmhost.callpath").callpath.choose(True).decode_response
    with pytest.raises(BadResponse):
        _decode_streaming(msgpack.packb(response))
    if decode_c is not None:
        assert decode_c(msgpack.packb(response)) is None


def test_one_content_type_and_other_repeats_are_fine() -> None:
    headers = (("content-type", "text/plain"), ("set-cookie", "a=1"), ("set-cookie", "b=2"), ("location", "/x"))
    assert decode_response(msgpack.packb({"headers": [list(h) for h in headers]})).headers == headers


def test_decode_builds_no_objects_for_unknown_keys() -> None:
    """16 MB of empty maps under an unknown key would be 16 million dicts (GBs)."""
    n = 4_000_000
    raw = b"\x82\xa4body\xa2ok\xa1x\xdd" + n.to_bytes(4, "big") + b"\x80" * n
    assert decode_response(raw).body == b"ok"


def test_a_tab_in_a_header_value_is_fine() -> None:
    assert decode_response(msgpack.packb({"headers": [["x-a", "a\tb"]]})).headers == (("x-a", "a\tb"),)


def test_request_bytes_that_are_not_utf8_reach_a_handler_as_bin() -> None:
    from wasmhost.abi.handler_codec import encode_request_py
    value = b"caf\xe9".decode("utf-8", "surrogateescape")
    raw = encode_request_py(Request(headers=(("x-a", value), ("x-b", "ok"))), {})
    seen = msgpack.unpackb(raw, raw=False)
    assert seen["headers"] == [["x-a", b"caf\xe9"], ["x-b", "ok"]]
