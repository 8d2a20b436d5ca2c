"""What a module declares, read from its sections before it is compiled.

Deploy refuses a module that no instance could ever be made of here (more than one
memory or table, an initial memory or table over the limits, a data or element
segment outside them): else it would deploy fine and fail on every call.
"""

from __future__ import annotations

from dataclasses import dataclass

from .engine import POOL_TABLE_ELEMENTS, WasmEngine
from .errors import InvalidModule
from .native import MAX_TABLE_ELEMENTS

# What one instance may have: one memory, one table of at most native.MAX_TABLE_ELEMENTS (the
# Store limiter of both call paths), or POOL_TABLE_ELEMENTS in a pooling slot.
WASM_PAGE = 65536


def _leb(data: bytes, pos: int) -> tuple[int, int]:
    """An unsigned LEB128 at `pos`: (value, position after it). IndexError past the end."""
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("LEB128 too long")


def _limits(data: bytes, pos: int) -> tuple[int, int]:
    """(minimum, position after the limits): flags, min, optional max (any index width)."""
    flags = data[pos]
    minimum, pos = _leb(data, pos + 1)
    if flags & 1:
        _, pos = _leb(data, pos)
    if flags & 8:  # custom page size (proposal): one more LEB
        _, pos = _leb(data, pos)
    return minimum, pos


def _sleb(data: bytes, pos: int) -> tuple[int, int]:
    """A signed LEB128 at `pos`: (value, position after it)."""
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return (result - (1 << shift) if byte & 0x40 else result), pos
        if shift > 63:
            raise ValueError("LEB128 too long")


@dataclass(slots=True)
class DeclaredShape:
    """What a module's table (4), memory (5), element (9) and data (11) sections declare."""

    tables: int = 0  # tables defined
    table_min: int = 0  # the first table's initial elements
    memories: int = 0  # memories defined
    memory_pages: int = 0  # the first memory's initial pages
    data_end: int = 0  # the furthest end of an active data segment with a constant offset
    data_segment: int = -1  # which segment that is
    elem_end: int = 0  # the same for the active element segments of table 0
    elem_segment: int = -1


def declared_shape(wasm_bytes: bytes) -> DeclaredShape | None:
    """Read the sizes a module declares from its sections, without compiling it; None
    when the bytes cannot be read that way (wasmtime then says what is wrong)."""
    shape = DeclaredShape()
    try:
        if wasm_bytes[:8] != b"\0asm\x01\x00\x00\x00":
            return None
        pos = 8
        while pos < len(wasm_bytes):
            section = wasm_bytes[pos]
            size, body = _leb(wasm_bytes, pos + 1)
            pos = body + size
            if section not in (4, 5, 9, 11):
                continue
            count, at = _leb(wasm_bytes, body)
            if section == 11:
                _data_ends(wasm_bytes, at, count, shape)
                continue
            if section == 9:
                _elem_ends(wasm_bytes, at, count, shape)
                continue
            if count == 0:
                continue
            if section == 4:
                shape.tables += count
                if wasm_bytes[at] == 0x40:  # table with an initialiser: 0x40 0x00 tabletype expr
                    at += 2
                if wasm_bytes[at] in (0x63, 0x64):  # (ref null? heaptype)
                    _, at = _leb(wasm_bytes, at + 1)
                else:
                    at += 1
                shape.table_min = _limits(wasm_bytes, at)[0]
            else:
                shape.memories += count
                shape.memory_pages = _limits(wasm_bytes, at)[0]
    except (IndexError, ValueError):
        return None
    return shape


def _data_ends(data: bytes, at: int, count: int, shape: DeclaredShape) -> None:
    """The furthest end of the active data segments of memory 0 whose offset is a plain
    `i32.const` (any other offset expression ends the scan: not worth guessing)."""
    for index in range(count):
        flags, at = _leb(data, at)
        if flags == 1:  # passive: no offset
            length, at = _leb(data, at)
            at += length
            continue
        if flags == 2:
            memory, at = _leb(data, at)
            if memory != 0:
                return
        elif flags != 0:
            return
        if data[at] != 0x41:  # i32.const
            return
        offset, at = _sleb(data, at + 1)
        if data[at] != 0x0B:  # end
            return
        length, at = _leb(data, at + 1)
        at += length
        end = (offset & 0xFFFFFFFF) + length
        if end > shape.data_end:
            shape.data_end, shape.data_segment = end, index


def _elem_ends(data: bytes, at: int, count: int, shape: DeclaredShape) -> None:
    """The furthest end of the active element segments of table 0 whose offset is a plain
    `i32.const`, in all eight encodings (flags bit 0: passive or declarative; bit 1: an
    explicit table index, or declarative; bit 2: expressions instead of function indices).
    Segments with another offset are skipped; anything unreadable ends the scan."""
    try:
        for index in range(count):
            flags, at = _leb(data, at)
            if flags > 7:
                return
            table, offset = 0, None
            if not flags & 1:
                if flags & 2:
                    table, at = _leb(data, at)
                offset, at = _const_expr(data, at)
            if flags & 3:  # an element kind (0x00, funcref) or a reference type
                at = _reftype(data, at) if flags & 4 else at + 1
            length, at = _leb(data, at)
            for _ in range(length):
                _, at = _const_expr(data, at) if flags & 4 else _leb(data, at)
            if not flags & 1 and table == 0 and offset is not None:
                end = (offset & 0xFFFFFFFF) + length
                if end > shape.elem_end:
                    shape.elem_end, shape.elem_segment = end, index
    except (IndexError, ValueError):
        return


def _const_expr(data: bytes, at: int) -> tuple[int | None, int]:
    """A constant expression: (its value when it is one `i32.const`, else None; the position
    after its `end`). ValueError for an instruction a constant expression cannot hold."""
    value, ops = None, 0
    while True:
        op = data[at]
        at += 1
        if op == 0x0B:  # end
            return (value if ops == 1 else None), at
        ops += 1
        if op == 0x41:  # i32.const
            value, at = _sleb(data, at)
        elif op == 0x42:  # i64.const
            _, at = _sleb(data, at)
        elif op in (0x23, 0xD2):  # global.get, ref.func
            _, at = _leb(data, at)
        elif op == 0xD0:  # ref.null heaptype
            _, at = _sleb(data, at)
        elif op == 0x43 or op == 0x44:  # f32.const, f64.const
            at += 4 if op == 0x43 else 8
        elif op not in (0x6A, 0x6B, 0x6C, 0x7C, 0x7D, 0x7E):  # extended-const add, sub, mul
            raise ValueError(f"opcode {op:#x} in a constant expression")


def _reftype(data: bytes, at: int) -> int:
    """The position after a reference type: one byte, or 0x63/0x64 and a heap type."""
    if data[at] in (0x63, 0x64):
        return _sleb(data, at + 1)[1]
    return at + 1


def check_declared_shape(wasm: WasmEngine, wasm_bytes: bytes) -> None:
    """Refuse, before compiling, a module that no instance could ever be made of here
    (else every call would fail at instantiation, or wasmtime's pooling allocator would
    refuse it in its own words): more than one memory or table, an initial memory or
    table over the limits, a data or element segment outside the initial memory or table."""
    shape = declared_shape(wasm_bytes)
    if shape is None:
        return
    max_mib = wasm.config.max_memory_bytes // (1024 * 1024)
    if shape.memories > 1:
        raise InvalidModule(f"the module defines {shape.memories} memories; wasmhost allows one per module")
    if shape.tables > 1:
        raise InvalidModule(f"the module defines {shape.tables} tables; wasmhost allows one per module")
    pages = shape.memory_pages
    if pages * WASM_PAGE > wasm.config.max_memory_bytes:
        raise InvalidModule(f"the module's initial memory of {pages * WASM_PAGE // (1024 * 1024)} MiB "
                            f"({pages} pages) exceeds the server maximum of {max_mib} MiB", memory_mb=max_mib)
    limit = POOL_TABLE_ELEMENTS if wasm.pooling else MAX_TABLE_ELEMENTS
    if shape.table_min > limit:
        raise InvalidModule(f"the module's table has {shape.table_min} initial elements; this server allows at "
                            f"most {limit}", table_elements=limit)
    if shape.memories == 1 and shape.data_end > pages * WASM_PAGE:
        raise InvalidModule(f"the module's data segment {shape.data_segment} ends at byte {shape.data_end}, "
                            f"outside its initial memory of {pages * WASM_PAGE} bytes ({pages} pages): "
                            "every instantiation would fail")
    if shape.tables == 1 and shape.elem_end > shape.table_min:
        raise InvalidModule(f"the module's element segment {shape.elem_segment} ends at slot {shape.elem_end}, "
                            f"outside its initial table of {shape.table_min} slots: every instantiation would fail")
