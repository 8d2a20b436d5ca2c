"""The deploy-time shape check (wasmhost/module_shape.py) against wasmtime itself.

For element segments in every encoding, the check must refuse a module exactly
when wasmtime could never instantiate it, so that no deploy succeeds only to fail
on every call, and no module that runs is refused.
"""

from __future__ import annotations

import pytest
import wasmtime
from hypothesis import given, settings as hsettings, strategies as st

from wasmhost.engine import WasmEngine, shared_engine
from wasmhost.errors import InvalidModule
from wasmhost.module_shape import check_declared_shape, declared_shape

from .conftest import small_settings

TABLE = "(table 4 funcref) (func $f)"
# name: (module body beside TABLE, the furthest end the check must find, which segment that is)
ELEMENT_CASES: dict[str, tuple[str, int, int]] = {
    "mvp-fits": ("(elem (i32.const 2) $f $f)", 4, 0),
    "mvp-outside": ("(elem (i32.const 3) $f $f)", 5, 0),
    "table-index-outside": ("(elem (table 0) (i32.const 3) func $f $f)", 5, 0),
    "expressions-fit": ("(elem (i32.const 1) funcref (ref.func $f) (ref.null func))", 3, 0),
    "expressions-outside": ("(elem (i32.const 3) funcref (ref.func $f) (ref.null func))", 5, 0),
    "table-index-expressions-outside": ("(elem (table 0) (i32.const 4) funcref (ref.func $f))", 5, 0),
    "after-passive-outside": ("(elem func $f $f) (elem (i32.const 3) $f $f)", 5, 1),
    "after-declarative-outside": ("(elem declare func $f) (elem (table 0) (i32.const 4) func $f)", 5, 1),
    "after-passive-expressions-fits": ("(elem funcref (ref.func $f) (ref.null func)) (elem (i32.const 0) $f)",
                                       1, 1),
    "empty-at-the-end-fits": ("(elem (i32.const 4))", 4, 0),
    "empty-past-the-end": ("(elem (i32.const 5))", 5, 0),
    "second-is-furthest": ("(elem (i32.const 0) $f) (elem (i32.const 2) $f $f $f)", 5, 1),
    "negative-offset": ("(elem (i32.const -1) $f)", 0x1_0000_0000, 0),
}


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> WasmEngine:
    return shared_engine(small_settings(tmp_path_factory.mktemp("shape") / "data"))


def instantiates(engine: WasmEngine, wasm: bytes) -> bool:
    store = wasmtime.Store(engine.engine)
    store.set_fuel(1_000_000)
    store.set_epoch_deadline(1000)
    try:
        wasmtime.Instance(store, wasmtime.Module(engine.engine, wasm), [])
    except (wasmtime.Trap, wasmtime.WasmtimeError):
        return False
    return True


@pytest.mark.parametrize("case", list(ELEMENT_CASES))
def test_element_segments_are_refused_exactly_when_wasmtime_cannot_instantiate(engine: WasmEngine, case: str) -> None:
    body, end, segment = ELEMENT_CASES[case]
    wasm = bytes(wasmtime.wat2wasm(f"(module {TABLE} {body})"))
    shape = declared_shape(wasm)
    assert shape is not None and (shape.elem_end, shape.elem_segment) == (end, segment if end else -1)
    try:
        check_declared_shape(engine, wasm)
        refused = False
    except InvalidModule as exc:
        refused = True
        assert f"element segment {segment} ends at slot {end}, outside its initial table of 4 slots" in exc.message
    assert refused == (not instantiates(engine, wasm)), (case, refused)


def test_segments_with_offsets_only_known_at_instantiation_are_left_to_wasmtime(engine: WasmEngine) -> None:
    wasm = bytes(wasmtime.wat2wasm(f'(module (import "env" "base" (global $base i32)) {TABLE} '
                                   "(elem (global.get $base) $f) (elem (i32.const 3) $f $f))"))
    shape = declared_shape(wasm)
    assert shape is not None and (shape.elem_end, shape.elem_segment) == (5, 1)  # the second is still read


def test_a_module_with_a_data_and_an_element_segment_out_of_range_names_the_memory_first(engine: WasmEngine) -> None:
    wasm = bytes(wasmtime.wat2wasm(f'(module (memory 1) (data (i32.const 65535) "ab") {TABLE} '
                                   "(elem (i32.const 4) $f))"))
    with pytest.raises(InvalidModule, match="data segment 0 ends at byte 65537"):
        check_declared_shape(engine, wasm)


VALID = bytes(wasmtime.wat2wasm(
    f'(module (memory 1) (data (i32.const 8) "hello") {TABLE} (elem func $f) '
    "(elem (table 0) (i32.const 1) funcref (ref.func $f)) (elem declare func $f))"))


@hsettings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.integers(8, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=6))
def test_the_shape_reader_never_raises_on_corrupt_modules(edits: list[tuple[int, int]]) -> None:
    """Whatever the bytes, the reader gives a shape or None; wasmtime then says what is wrong."""
    wasm = bytearray(VALID)
    for position, byte in edits:
        wasm[position] = byte
    shape = declared_shape(bytes(wasm))
    assert shape is None or shape.elem_end >= 0


@hsettings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_the_shape_reader_never_raises_on_arbitrary_bytes(tail: bytes) -> None:
    declared_shape(b"\0asm\x01\0\0\0" + tail)
