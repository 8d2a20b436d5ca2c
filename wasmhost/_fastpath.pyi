# The C extension built from wasmhost/csrc/ (fastpath*.c). `native.py` makes the same calls
# through ctypes; `callpath.py` picks one of the two per process.
from typing import Sequence

OK: int
FAULT_INSTANTIATE: int
FAULT_RUN: int
ALLOC_OUT_OF_BOUNDS: int
RESPONSE_TOO_LARGE: int
RESPONSE_OUT_OF_BOUNDS: int
MISSING_EXPORT: int

class CallResult:
    """What one fresh-instance call did (the fields of native.RawCall, in its order)."""

    outcome: int
    response: bytes | None
    error: int
    trap: int
    memory_size: int
    pointer: int
    length: int
    export: int
    fuel_used: int
    instantiate_ns: int
    run_ns: int
    stdout: bytes | None
    stdout_overflow: bool
    log: bytes | None
    log_truncated: bool
    over_budget: bool

def init(addresses: tuple[int, ...], sizes: tuple[int, int, int], max_table_elements: int) -> None: ...
def call_handler(engine: int, pre: int, key: int, fuel: int, memory_bytes: int, ticks: int, wasi: int,
                 initialize: bool, request: bytes, max_response: int, host_calls_left: int,
                 max_log_bytes: int) -> CallResult: ...
def call_export(engine: int, pre: int, key: int, fuel: int, memory_bytes: int, ticks: int, wasi: int,
                export: bytes, capture_stdout: bool, max_stdout: int, max_log_bytes: int) -> CallResult: ...
def define_log(linker: int, functype: int) -> None: ...
def define_wasi_stdio(linker: int, fd_write_type: int, log_type: int) -> None: ...
def wasi_config(argv: Sequence[bytes], env: Sequence[tuple[bytes, bytes]], stdin: bytes) -> int: ...
def encode_request(method: str | bytes, path: str | bytes, query: str | bytes,
                   headers: Sequence[tuple[str | bytes, str | bytes]], body: bytes) -> bytes: ...
def decode_response(raw: bytes) -> tuple[int, tuple[tuple[str, str], ...], bytes] | None: ...
