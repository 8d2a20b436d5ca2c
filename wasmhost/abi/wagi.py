"""The `wagi` interface: a WASI command run CGI-style (DESIGN §2b).

stdin is the request body, argv and the environment carry the request, stdout is
a CGI response. The pure parts (environment, output parsing, routes) live in
`cgi.py`; this file runs the module.
"""

from __future__ import annotations

from typing import Mapping
from urllib.parse import unquote

from ..errors import BadRequest, BadResponse, NotFound, TooLarge
from ..models import FunctionVersion, Request, Response, Route
from ..native import GuestFault, NativeCall
from . import cgi
from .hostcalls import CallState, exit_fault


def wasi_inputs(request: Request, version: FunctionVersion) -> tuple[list[bytes], list[tuple[bytes, bytes]], str]:
    """argv, environment and the export to run for one request.

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
    return ([a.encode("utf-8", "surrogateescape") for a in argv],
            [(k.encode("utf-8", "surrogateescape"), v.encode("utf-8", "surrogateescape"))
             for k, v in environ.items()],
            export)


def run_export(native: NativeCall, export: str, state: CallState) -> None:
    """Run a `() -> ()` export; `proc_exit(0)` counts as a normal end."""
    try:
        func = native.nullary_export(export.encode())
    except GuestFault as fault:
        raise BadResponse(f"the module has no usable export {export!r}: {fault.message}") from None
    try:
        native.call(func, 0)
    except GuestFault as fault:
        fault = exit_fault(fault, state)
        if fault.exit_code != 0:
            raise fault from None


def output_response(state: CallState, max_response_bytes: int) -> Response:
    if state.stdout_overflow:
        raise TooLarge(f"output exceeds the response limit of {max_response_bytes} bytes",
                       limit=max_response_bytes)
    return cgi.parse_output(bytes(state.stdout))


def routes_from_output(state: CallState, exports: Mapping[str, object] | frozenset[str]) -> tuple[Route, ...]:
    if state.stdout_overflow:
        raise BadResponse("_routes printed more than the output limit")
    return cgi.parse_routes(bytes(state.stdout), exports)
