"""The `wagi` interface's executor: a WASI command run CGI-style (ABI.md §2).

stdin is the request body, argv and the environment carry the request, stdout is
a CGI response. The pure parts (environment, output parsing, routes) live in
`cgi.py`; this file runs the module, through the call path's `call_export`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import unquote

from ..callpath import CallPath
from ..engine import WasmEngine
from ..errors import BadRequest, BadResponse, InternalError, InvalidModule, NonZeroExit, NotFound, TooLarge, WasmhostError
from ..models import FunctionVersion, Request, Response, Route
from ..native import GuestFault, Outcome, RawCall
from ..settings import MIB, Settings
from . import cgi

if TYPE_CHECKING:
    from ..cache import PreparedModule

ROUTES_OUTPUT_BYTES = 256 * 1024  # what `_routes` may print


class WagiInputs(NamedTuple):
    argv: list[bytes]
    env: list[tuple[bytes, bytes]]
    stdin: bytes
    export: str  # what to run: a route's export, the entry point, or _start


def wasi_inputs(request: Request, version: FunctionVersion) -> WagiInputs:
    """argv, environment, stdin and the export to run for one request.

    SCRIPT_NAME + PATH_INFO is always the whole path, as CGI wants: the matched
    route's part of the path moves into SCRIPT_NAME.
    """
    route, raw_info = cgi.match_route(version.routes, request.path)
    export = route.export if route else (version.entrypoint or "_start")
    if route is None and export not in version.exports:
        raise NotFound(f"no route of function {version.name!r} matches {request.path[:200]!r}")
    script_name = request.script_name + request.path[: len(request.path) - len(raw_info)]
    matched = request.script_name + (cgi.route_text(route) if route else "/...")
    path_info = unquote(raw_info)  # the one decoding (RFC 3875 §4.1.5); the raw form is X_RAW_PATH_INFO
    if "\0" in path_info:  # a C environment string ends at NUL: the variable could not be passed
        raise BadRequest("the request path decodes to a NUL byte (%00), which a CGI program cannot be given "
                         "in PATH_INFO")
    environ = cgi.build_environ(request, config=version.config, script_name=script_name,
                                path_info=path_info, matched_route=matched, raw_path_info=raw_info)
    argv = cgi.build_argv(request, script_name)
    # surrogateescape: request bytes that are not UTF-8 reach the guest unchanged
    return WagiInputs([a.encode("utf-8", "surrogateescape") for a in argv],
                      [(k.encode("utf-8", "surrogateescape"), v.encode("utf-8", "surrogateescape"))
                       for k, v in environ.items()],
                      request.body, export)


class WagiExecutor:
    abi = "wagi"
    captures_stdout = True

    def __init__(self, calls: CallPath, wasm: WasmEngine, settings: Settings) -> None:
        self.calls = calls
        self.wasm = wasm
        self.max_response = settings.max_response_bytes
        self.max_log = settings.max_log_bytes

    def inputs(self, request: Request, version: FunctionVersion) -> WagiInputs:
        return wasi_inputs(request, version)

    def call(self, prepared: "PreparedModule", version: FunctionVersion, inputs: WagiInputs, key: int, fuel: int,
             host_calls: int, max_stdout: int = 0) -> RawCall:
        limits = version.limits
        wasi = self.calls.wasi_config(inputs.argv, inputs.env, inputs.stdin)
        return self.calls.call_export(self.wasm.ptr, prepared.pre_ptr, key, fuel, limits.memory_mb * MIB,
                                      self.wasm.deadline_ticks(limits.timeout_ms), wasi, inputs.export.encode(),
                                      True, max_stdout or self.max_response, self.max_log)

    def response(self, raw: RawCall, inputs: Any) -> Response:
        """The CGI answer of a program that ended (returned from its export, or exited 0)."""
        outcome = raw.outcome
        if outcome == Outcome.MISSING_EXPORT:
            raise BadResponse(f"the module has no usable export {inputs.export!r}: no () -> () function of "
                              "that name")
        if outcome not in (Outcome.OK, Outcome.FAULT_RUN):  # FAULT_RUN: an exit the sandbox found normal
            raise InternalError(f"unknown call outcome {outcome}")  # pragma: no cover
        if raw.stdout_overflow:
            raise TooLarge(f"output exceeds the response limit of {self.max_response} bytes", limit=self.max_response)
        return cgi.parse_output(raw.stdout or b"")

    def exit_error(self, fault: GuestFault) -> WasmhostError | None:
        """Exit 0 while running is a normal end; any other status is `nonzero_exit`."""
        if fault.during == "instantiate":
            return BadResponse(f"the module exited with status {fault.exit_code} before answering",
                               exit_code=fault.exit_code)
        if fault.exit_code == 0:
            return None
        return NonZeroExit(f"the program exited with status {fault.exit_code}", exit_code=fault.exit_code)

    def routes(self, raw: RawCall, fault: GuestFault | None, exports: frozenset[str],
               func_exports: frozenset[str]) -> tuple[Route, ...]:
        """The routes a module's `_routes` export printed (run once, at deploy)."""
        if raw.outcome == Outcome.MISSING_EXPORT:
            why = "export '_routes' is not a () -> () function" if "_routes" in func_exports else \
                "the module has no exported function '_routes'"
            raise BadResponse(f"the module has no usable export '_routes': {why}")
        if fault is not None and (fault.exit_code != 0 or fault.during == "instantiate"):
            raise InvalidModule(f"the module's _routes export failed: {fault.message}")
        if raw.stdout_overflow:
            raise BadResponse("_routes printed more than the output limit")
        return cgi.parse_routes(raw.stdout or b"", exports)
