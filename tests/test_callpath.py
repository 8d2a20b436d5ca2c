"""The call path: one per process, chosen from Settings, and the two paths alike in what they
give back (the C extension's CallResult and native.RawCall)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wasmhost import callpath, native
from wasmhost.native import Outcome, RawCall

from .server import Server


def test_the_paths_are_chosen_by_the_setting() -> None:
    assert callpath.choose(False).name == "ctypes"
    ctypes_path = callpath.choose(False)
    assert ctypes_path.extension is None and ctypes_path.encode_request is None and ctypes_path.python_stdio
    c_path = callpath.choose(True)
    if c_path.name != "c":
        pytest.fail("the C extension is not built: run `make install` (it needs gcc and Python headers)")
    assert not c_path.python_stdio and c_path.encode_request is not None


def test_the_extension_exports_the_outcomes_and_the_result_fields_of_native() -> None:
    fast = native.load_extension()
    assert fast is not None
    assert {o.name: o.value for o in Outcome} == {o.name: getattr(fast, o.name) for o in Outcome}
    assert sorted(f for f in dir(fast.CallResult) if not f.startswith("_")) == sorted(RawCall._fields)


@pytest.mark.parametrize("fastpath", ["1", "0"])
def test_function_calls_run_inline_on_either_path(tmp_path: Path, modules_dir: Path, fastpath: str) -> None:
    """With the extension built and WASMHOST_FASTPATH=0, /fn/ encoded in C and then never ran a
    call inline (issue 16): the switch is now the sandbox's alone."""
    with Server(tmp_path / "data", env={"WASMHOST_FASTPATH": fastpath}) as srv:
        assert srv.deploy("hello", (modules_dir / "hello_handler.wasm").read_bytes()).status_code == 201
        r = srv.client.get("/fn/hello")
        assert r.status_code == 200 and r.content == b"Hello, world!\n"
        assert 'queue;desc="inline"' in r.headers["server-timing"], r.headers["server-timing"]
        r = srv.client.post("/fn/hello", content=b"x" * 100)
        assert r.status_code == 200 and 'desc="inline"' in r.headers["server-timing"]
