"""The C fd_write (and wasmhost.log next to it) of the fast path and the Python ones of the
ctypes path answer every edge case alike: errnos, the count written, stdout, log lines and
their order, and the response cap."""

from __future__ import annotations

from pathlib import Path

import pytest
import wasmtime

from wasmhost.errors import TooLarge
from wasmhost.host import Host
from wasmhost.models import Request

# Each case's errno goes to byte 300+i; the body is those bytes plus the first nwritten.
CASES_WAT = """(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (import "wasmhost" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "Status: 200\\nContent-Type: text/plain\\n\\n")
  (data (i32.const 140) "to stderr, ")
  (data (i32.const 160) "a log line")
  (data (i32.const 180) "more stderr\\n")
  (func $case (param $i i32) (param $errno i32)
    (i32.store8 (i32.add (i32.const 300) (local.get $i)) (local.get $errno)))
  (func (export "_start")
    ;; iovec 0: the CGI head; iovec 8: stderr text; iovec 24: out of bounds; iovec 32: stderr again
    (i32.store (i32.const 0) (i32.const 100)) (i32.store (i32.const 4) (i32.const 38))
    (i32.store (i32.const 8) (i32.const 140)) (i32.store (i32.const 12) (i32.const 11))
    (i32.store (i32.const 24) (i32.const 65530)) (i32.store (i32.const 28) (i32.const 100))
    (i32.store (i32.const 32) (i32.const 180)) (i32.store (i32.const 36) (i32.const 12))
    (call $case (i32.const 0) (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))
    (call $case (i32.const 1) (call $w (i32.const 3) (i32.const 0) (i32.const 1) (i32.const 20)))
    (call $case (i32.const 2) (call $w (i32.const 1) (i32.const 0) (i32.const 1025) (i32.const 20)))
    (call $case (i32.const 3) (call $w (i32.const 1) (i32.const 65532) (i32.const 1) (i32.const 20)))
    (call $case (i32.const 4) (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 65534)))
    (call $case (i32.const 5) (call $w (i32.const 2) (i32.const 24) (i32.const 1) (i32.const 20)))
    (call $case (i32.const 6) (call $w (i32.const 2) (i32.const 8) (i32.const 1) (i32.const 20)))
    (call $log (i32.const 160) (i32.const 10))
    (call $case (i32.const 7) (call $w (i32.const 2) (i32.const 32) (i32.const 1) (i32.const 20)))
    (call $case (i32.const 8) (call $w (i32.const 2) (i32.const 0) (i32.const 0) (i32.const 20)))
    (call $case (i32.const 9) (i32.load8_u (i32.const 20)))
    ;; the body: ten errno bytes, then the 4-byte nwritten of case 0
    (i32.store (i32.const 48) (i32.const 300)) (i32.store (i32.const 52) (i32.const 10))
    (i32.store (i32.const 56) (i32.const 16)) (i32.store (i32.const 60) (i32.const 4))
    (drop (call $w (i32.const 1) (i32.const 48) (i32.const 2) (i32.const 64)))))"""

# stdout: one write that fits, then one that passes the cap by a byte.
FLOOD_WAT = """(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 100) "Content-Type: text/plain\\n\\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 100)) (i32.store (i32.const 4) (i32.const 26))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))
    (i32.store (i32.const 0) (i32.const 1024)) (i32.store (i32.const 4) (i32.const 4070))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))
    (i32.store (i32.const 4) (i32.const 1))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))))"""


def _run(tmp_path: Path, path: str, wat: str, max_log_bytes: int = 4096):
    from .conftest import small_settings
    with Host(small_settings(tmp_path / path, fastpath=path == "c", max_response_bytes=4096,
                             max_log_bytes=max_log_bytes)) as host:
        assert host.sandbox.path == path
        host.deploy("f", wasmtime.wat2wasm(wat))
        return host.invoke("f", Request(script_name="/fn/f"))


def _outcome(inv):
    response = (inv.response.status, inv.response.headers, inv.response.body) if inv.response else None
    return response, repr(inv.error), inv.logs, inv.logs_truncated


def test_fd_write_edge_cases_alike_on_both_paths(tmp_path: Path) -> None:
    c, py = _run(tmp_path, "c", CASES_WAT), _run(tmp_path, "ctypes", CASES_WAT)
    assert _outcome(c) == _outcome(py)
    assert c.ok, c.error
    assert c.response.body == bytes([0, 8, 28, 21, 21, 21, 0, 0, 0, 0]) + (38).to_bytes(4, "little")
    assert c.logs == ["to stderr, a log line", "more stderr"]


@pytest.mark.parametrize("max_log_bytes", [8, 20, 21, 22])
def test_log_cap_alike_on_both_paths(tmp_path: Path, max_log_bytes: int) -> None:
    c = _run(tmp_path, "c", CASES_WAT, max_log_bytes)
    py = _run(tmp_path, "ctypes", CASES_WAT, max_log_bytes)
    assert _outcome(c) == _outcome(py)
    assert c.logs_truncated


def test_stdout_cap_alike_on_both_paths(tmp_path: Path) -> None:
    c, py = _run(tmp_path, "c", FLOOD_WAT), _run(tmp_path, "ctypes", FLOOD_WAT)
    assert _outcome(c) == _outcome(py)
    assert isinstance(c.error, TooLarge)
