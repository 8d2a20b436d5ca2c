"""The one error hierarchy of wasmhost.

Every failure a user can see is a `WasmhostError` with a stable `code`. The HTTP
layer maps `code` to a status in exactly one place; the CLI prints it. Messages
must be safe to show to a client: no host paths, no tracebacks, no secrets.
"""

from __future__ import annotations

from typing import Any, ClassVar


class WasmhostError(Exception):
    """Base class: a classified, user-facing failure."""

    code: ClassVar[str] = "internal"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The JSON error body: `{"code", "message", ...details}`."""
        return {"code": self.code, "message": self.message, **self.details}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class InternalError(WasmhostError):
    """A bug or an environment failure on the host side (never the guest's fault)."""

    code = "internal"
    http_status = 500


class BadRequest(WasmhostError):
    """A malformed argument: bad function name, limit above the server maximum, bad config."""

    code = "bad_request"
    http_status = 400


class NotFound(WasmhostError):
    code = "not_found"
    http_status = 404


class MethodNotAllowed(WasmhostError):
    """An admin or ops route asked with a method it does not take (functions take every method)."""

    code = "method_not_allowed"
    http_status = 405


class InvalidModule(WasmhostError):
    """Not wasm, fails validation, unsupported imports or no known guest interface."""

    code = "invalid_module"
    http_status = 400


class TooLarge(WasmhostError):
    """A module, request or response over its configured limit."""

    code = "too_large"
    http_status = 413


class RequestTimeout(WasmhostError):
    """The client did not send the whole request in time (a slow-drip body)."""

    code = "request_timeout"
    http_status = 408


class Unauthorized(WasmhostError):
    code = "unauthorized"
    http_status = 401


class PreconditionFailed(WasmhostError):
    """A write's If-Match / If-None-Match did not hold: the function changed since it was read."""

    code = "precondition_failed"
    http_status = 412


class StorageFull(WasmhostError):
    """The disk or the database is full: nothing was stored (507 Insufficient Storage, RFC 4918)."""

    code = "storage_full"
    http_status = 507


class Overloaded(WasmhostError):
    code = "overloaded"
    http_status = 503

    def __init__(self, message: str, retry_after: int = 1, **details: Any) -> None:
        super().__init__(message, retry_after=retry_after, **details)
        self.retry_after = retry_after


class GuestError(WasmhostError):
    """Base for failures caused by the guest while it ran (502/504)."""

    code = "guest_error"
    http_status = 502


class FuelExhausted(GuestError):
    code = "fuel_exhausted"
    http_status = 504


class Timeout(GuestError):
    code = "timeout"
    http_status = 504


class MemoryLimit(GuestError):
    code = "memory_limit"
    http_status = 502


class Trap(GuestError):
    """unreachable, out-of-bounds, stack overflow, division by zero, ..."""

    code = "trap"
    http_status = 502


class BadResponse(GuestError):
    """Guest output that breaks its interface's rules."""

    code = "bad_response"
    http_status = 502


class NonZeroExit(GuestError):
    """A WASI program called proc_exit with a non-zero status."""

    code = "nonzero_exit"
    http_status = 502


ALL_ERRORS: tuple[type[WasmhostError], ...] = (
    InternalError, BadRequest, NotFound, MethodNotAllowed, InvalidModule, TooLarge, RequestTimeout, Unauthorized,
    PreconditionFailed, StorageFull, Overloaded,
    FuelExhausted, Timeout, MemoryLimit, Trap, BadResponse, NonZeroExit,
)
