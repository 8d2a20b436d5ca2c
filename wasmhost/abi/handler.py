"""The `handler` interface's executor: msgpack request in, msgpack response out (ABI.md §1).

The host asks `wasmhost_alloc(len)` for room, writes the request there, calls
`wasmhost_handle(ptr, len)` and reads the response from `(ptr << 32) | len`; the call path
does those steps (in C or through ctypes), this module the encoding (`handler_codec`) and
what each outcome means for this interface.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ..callpath import CallPath
from ..engine import WasmEngine
from ..errors import BadResponse, InternalError, TooLarge, WasmhostError
from ..models import FunctionVersion, Request, Response
from ..native import GuestFault, Outcome, RawCall
from ..settings import MIB, Settings
from . import handler_codec

if TYPE_CHECKING:
    from ..cache import PreparedModule

MISSING_NAMES = ("wasmhost_alloc", "wasmhost_handle", "memory", "entry point", "_initialize")
_OK = int(Outcome.OK)


class HandlerExecutor:
    abi = "handler"
    captures_stdout = False

    def __init__(self, calls: CallPath, wasm: WasmEngine, settings: Settings) -> None:
        self.calls = calls
        self.wasm = wasm
        self.engine_ptr, self.tick_ms = wasm.ptr, wasm.config.epoch_tick_ms
        self.max_response = settings.max_response_bytes
        self.max_log = settings.max_log_bytes
        self._c_encode = calls.encode_request
        self._encode = calls.encode_request or handler_codec.encode_fields
        self._c_decoder = calls.decode_response

    def inputs(self, request: Request, version: FunctionVersion) -> bytes:
        if self._c_encode is None:  # a Request's text is str: the reference encoding, one packb
            return handler_codec.encode_request_py(request, version.config)
        return self._c_encode(request.method, request.path, request.query, request.headers,
                              request.body) + handler_codec.packed_config(version.config)

    def inputs_from_fields(self, method: str, path: str, query: bytes, headers: Sequence[tuple[bytes, bytes]],
                           body: bytes, config: Mapping[str, str]) -> bytes:
        """`inputs` from the fields as the HTTP server has them (no `Request` built)."""
        return self._encode(method, path, query, headers, body) + handler_codec.packed_config(config)

    def call(self, prepared: "PreparedModule", version: FunctionVersion, inputs: bytes, key: int, fuel: int,
             host_calls: int) -> RawCall:
        limits = version.limits
        wasi = self.calls.wasi_config([version.name.encode()], [], b"") if prepared.uses_wasi else 0
        ticks = -(-limits.timeout_ms // self.tick_ms) + 1  # WasmEngine.deadline_ticks, without its call
        return self.calls.call_handler(self.engine_ptr, prepared.pre_ptr, key, fuel, limits.memory_mb * MIB, ticks,
                                       wasi, prepared.has_initialize, inputs, self.max_response, host_calls,
                                       self.max_log)

    def response(self, raw: RawCall, inputs: Any) -> Response:
        outcome = raw.outcome
        if outcome == _OK:
            assert raw.response is not None  # OK carries the answer's bytes
            return handler_codec.decode_response(raw.response, self._c_decoder)
        if outcome == Outcome.ALLOC_OUT_OF_BOUNDS:
            raise BadResponse(f"wasmhost_alloc returned {raw.pointer}, outside linear memory ({raw.memory_size} bytes)")
        if outcome == Outcome.RESPONSE_TOO_LARGE:
            raise TooLarge(f"response of {raw.length} bytes exceeds the limit of {self.max_response} bytes",
                           limit=self.max_response)
        if outcome == Outcome.RESPONSE_OUT_OF_BOUNDS:
            raise BadResponse(f"response pointer {raw.pointer} + length {raw.length} is outside linear memory "
                              f"({raw.memory_size} bytes)")
        if outcome == Outcome.MISSING_EXPORT:
            raise BadResponse(f"the module has no usable export {MISSING_NAMES[raw.export]!r} (of the type its "
                              "interface requires)")
        raise InternalError(f"unknown call outcome {outcome}")  # pragma: no cover

    def exit_error(self, fault: GuestFault) -> WasmhostError:
        """A handler answers by returning; exiting means it never did."""
        return BadResponse(f"the module exited with status {fault.exit_code} before answering",
                           exit_code=fault.exit_code)
