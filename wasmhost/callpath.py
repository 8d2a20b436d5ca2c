"""How this process makes fresh-instance calls: in C (the `_fastpath` extension) or through ctypes.

One `CallPath` is chosen per process (`choose`, from `Settings.fastpath` and whether the
extension is built) and handed to the sandbox, which owns it: nothing else asks whether the
extension exists. Both paths take the same arguments and give the same `RawCall`
(`native.RawCall` / `_fastpath.CallResult`), so the interface executors above (`abi/`) are
written once. The differences a caller may see are kept here:

- the C path's `wasmhost.log` and WASI `fd_write` are C functions that write into the call's
  own buffers without the GIL, and come back in `RawCall.log` / `.stdout`; on the ctypes path
  they are Python functions writing into the call's `hostcalls.CallState` (found by the call's
  key, the third argument), which goes into the `RawCall` too, so a caller reads them from one
  place;
- the C path also offers the handler codec in C (`encode_request`, `decode_response`), which
  the handler executor uses when present.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, Sequence

from . import native
from .hostcalls import STATES
from .native import RawCall

# encode_request(method, path, query, headers, body) -> the handler request map without `config`
EncodeRequest = Callable[[Any, Any, Any, Any, bytes], bytes]
# decode_response(raw) -> (status, headers, body) of a response in the common shape, or None
DecodeResponse = Callable[[bytes], "tuple[int, tuple[tuple[str, str], ...], bytes] | None"]


@dataclass(frozen=True, slots=True)
class CallPath:
    """The calls of one path. `call_handler` / `call_export` take the arguments that
    `_fastpath.call_handler` / `call_export` take (wasmhost/csrc/fastpath_call.c)."""

    name: Literal["c", "ctypes"]
    call_handler: Callable[..., RawCall]
    call_export: Callable[..., RawCall]
    wasi_config: Callable[[Sequence[bytes], Sequence[tuple[bytes, bytes]], bytes], int]
    extension: Any  # the `_fastpath` module (its host functions go on the linkers), or None
    encode_request: EncodeRequest | None
    decode_response: DecodeResponse | None
    python_stdio: bool  # log and fd_write are Python functions: every call needs a CallState


def choose(use_c: bool = True) -> CallPath:
    """The C path when asked for and built, else ctypes."""
    fast = native.load_extension() if use_c else None
    if fast is None:
        return CallPath("ctypes", _ctypes_call_handler, _ctypes_call_export, native.wasi_config, None, None, None,
                        python_stdio=True)
    return CallPath("c", fast.call_handler, fast.call_export, fast.wasi_config, fast, fast.encode_request,
                    fast.decode_response, python_stdio=False)


def _ctypes_call_handler(*args: Any) -> RawCall:
    return native.call_handler(*args, stdio=STATES.get(args[2]))


def _ctypes_call_export(*args: Any) -> RawCall:
    return native.call_export(*args, stdio=STATES.get(args[2]))
