"""The pure half of the `wagi` ABI: CGI environment in, CGI response out.

A WAGI guest is an ordinary `wasm32-wasi` command. The host hands it a request
the CGI way (argv, environment, stdin) and reads a CGI response from stdout
(RFC 3875 §6, as WAGI and Spin's WAGI executor read it). Nothing here touches
wasmtime, so every rule can be tested, and fuzzed, in isolation.

How a caller puts the pieces together for one request (SCRIPT_NAME + PATH_INFO
is always the whole path, as CGI wants)::

    route, raw_info = match_route(version.routes, request.path)   # raw, undecoded path
    script_name = request.script_name + request.path[: len(request.path) - len(raw_info)]
    matched = request.script_name + (route_text(route) if route else "/...")
    environ = build_environ(request, config=..., script_name=script_name,
                            path_info=unquote(raw_info), matched_route=matched,
                            raw_path_info=raw_info)
    argv = build_argv(request, script_name)
    ...run route.export (or the entrypoint / _start)...
    response = parse_output(stdout)

Guest output is untrusted: every parser here does bounded work and fails only
with the classified error of its interface (`BadResponse`, `InvalidModule`).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence

from wasmhost import __version__
from wasmhost.errors import BadResponse, InvalidModule
from wasmhost.models import Request, Response, Route

__all__ = [
    "MAX_HEADER_BYTES",
    "MAX_HEADER_LINES",
    "MAX_ROUTES",
    "MAX_ROUTES_BYTES",
    "SERVER_SOFTWARE",
    "build_argv",
    "build_environ",
    "match_route",
    "parse_output",
    "parse_routes",
    "route_text",
]

SERVER_SOFTWARE = f"wasmhost/{__version__}"

MAX_HEADER_BYTES = 64 * 1024  # header section of a CGI response, separator excluded
MAX_HEADER_LINES = 1000
MAX_ROUTES = 256
MAX_ROUTES_BYTES = 64 * 1024  # whole `_routes` output

# Request headers that never reach the guest. RFC 3875 §4.1.18: the server SHOULD
# remove headers carrying authentication data and MAY remove connection-level ones.
# WAGI and Spin drop Authorization and Connection; Proxy-Authorization is the same
# kind of secret, so it goes too.
_HIDDEN_REQUEST_HEADERS = frozenset({"authorization", "proxy-authorization", "connection"})

# Response headers that describe the connection or the framing, not the content.
# The HTTP layer owns those (it knows the real body length); letting a guest set
# them invites a response that contradicts its own body. RFC 3875 §6.3.4 lets the
# server remove them, so they are dropped, silently.
_FRAMING_RESPONSE_HEADERS = frozenset({
    "connection", "content-length", "keep-alive", "proxy-connection", "te", "trailer",
    "transfer-encoding", "upgrade",
})

# RFC 9110 §5.6.2 token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Header names that may become HTTP_* variables: letters, digits, '-' (as Apache
# httpd 2.4 does). A name with '_' would collide with its '-' twin after mapping
# ("X_User" and "X-User" both give HTTP_X_USER), which lets a client smuggle a
# header past a proxy that strips only the '-' spelling; so it is dropped.
_ENV_HEADER_NAME = re.compile(r"[0-9A-Za-z-]+")
# Allowed in a response header value: HTAB, SP..~, obs-text (RFC 9110 §5.5).
# Anything else (CR, LF, NUL, other controls, DEL) could split or corrupt the response.
_BAD_VALUE_CHAR = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_STATUS = re.compile(r"([0-9]{3})(?:[ \t].*)?")
# A `_routes` subpath: visible ASCII without '?' and '#' (they never appear in a path).
_ROUTE_PATH = re.compile(r"/[\x21-\x22\x24-\x3e\x40-\x7e]*")


def build_argv(request: Request, script_name: str) -> list[str]:
    """argv as WAGI builds it: the script, then the raw query items split on "&".

    Items stay percent-encoded (the guest decodes if it cares); empty items
    ("a&&b", a bare "?") are dropped. WASI args are NUL-terminated strings, so
    NUL is removed from the script name and items holding one are dropped.
    """
    argv = [script_name.replace("\0", "")]
    argv.extend(item for item in request.query.split("&") if item and "\0" not in item)
    return argv


def build_environ(
    request: Request,
    *,
    config: Mapping[str, str],
    script_name: str,
    path_info: str,
    matched_route: str,
    raw_path_info: str,
) -> dict[str, str]:
    """The guest's environment: function config, then the CGI variables, which win.

    `path_info` is decoded, `raw_path_info` is as received (WAGI's X_RAW_PATH_INFO);
    `script_name` + `raw_path_info` is the request path. Repeated request headers
    become one variable, values joined with ", " in order (RFC 3875 §4.1.18;
    "; " for Cookie, RFC 6265 §5.4). An entry that cannot live in a WASI
    environment (a NUL anywhere, '=' or nothing in the name, text that is not
    encodable as UTF-8) is dropped rather than failing the call.
    """
    env: dict[str, str] = {}
    for key, value in config.items():
        _put(env, key, value)

    query = request.query
    cgi = {
        "REQUEST_METHOD": request.method,
        "PATH_INFO": path_info,
        "PATH_TRANSLATED": path_info,  # as WAGI: no document root to translate into
        "QUERY_STRING": query,
        "CONTENT_TYPE": request.header("content-type") or "",
        "CONTENT_LENGTH": str(len(request.body)),
        "SCRIPT_NAME": script_name,
        "SERVER_NAME": request.server_name,
        "SERVER_PORT": str(request.server_port),
        "SERVER_PROTOCOL": f"HTTP/{request.http_version}",
        "SERVER_SOFTWARE": SERVER_SOFTWARE,
        "GATEWAY_INTERFACE": "CGI/1.1",
        "REMOTE_ADDR": request.remote_addr,
        "REMOTE_HOST": request.remote_addr,  # RFC 3875 §4.1.9 allows it; no DNS on the hot path
        "AUTH_TYPE": "",
        "REMOTE_USER": "",
        "X_FULL_URL": _full_url(request, script_name + raw_path_info),
        "X_MATCHED_ROUTE": matched_route,
        "X_RAW_PATH_INFO": raw_path_info,
    }
    for key, value in cgi.items():
        _put(env, key, value)

    for key, value in _header_variables(request.headers).items():
        _put(env, key, value)
    return env


def _put(env: dict[str, str], key: str, value: str) -> None:
    """Set `key=value`; a pair that cannot be a WASI environment string is dropped,
    and so is any earlier (config) value of that name: a CGI variable that cannot
    be passed must not leave a config value posing as it."""
    if _env_safe(key, value):
        env[key] = value
    else:
        env.pop(key, None)


def _env_safe(key: str, value: str) -> bool:
    if not key or "=" in key or "\0" in key or "\0" in value:
        return False
    try:
        key.encode("utf-8")
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return False
    return True


def _header_variables(headers: Sequence[tuple[str, str]]) -> dict[str, str]:
    """HTTP_<NAME> variables: one per header name, repeats joined, in first-seen order."""
    values: dict[str, list[str]] = {}
    for name, value in headers:
        lname = name.lower()
        if lname in _HIDDEN_REQUEST_HEADERS or not _ENV_HEADER_NAME.fullmatch(name):
            continue
        values.setdefault("HTTP_" + name.upper().replace("-", "_"), []).append(value)
    return {
        key: ("; " if key == "HTTP_COOKIE" else ", ").join(parts) for key, parts in values.items()
    }


def _full_url(request: Request, path: str) -> str:
    """scheme://host[:port]path[?query]; the port only when not the scheme's default."""
    host = request.server_name
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal
    default_port = {"http": 80, "https": 443}.get(request.scheme)
    if request.server_port != default_port:
        host = f"{host}:{request.server_port}"
    query = f"?{request.query}" if request.query else ""
    return f"{request.scheme}://{host}{path}{query}"


def parse_output(stdout: bytes) -> Response:
    """Turn a CGI program's stdout into a response, or raise `BadResponse`.

    Header lines end in LF or CRLF (mixed is fine); the first empty line ends
    them and everything after it is the body, byte for byte. Header bytes are
    read as UTF-8 with surrogateescape, so any byte survives to the wire unchanged
    (the HTTP layer encodes them back the same way). Names are
    lower-cased (as WAGI's hyper does; the HTTP layer lower-cases anyway) and
    repeats (Set-Cookie) are kept in order, where WAGI keeps only one.
    `Status` sets the status and is not passed on; `Location` without `Status`
    means 302. Connection/framing headers (Content-Length, Transfer-Encoding, ...)
    are dropped: the HTTP layer frames the body itself.
    """
    if not stdout:
        raise BadResponse(
            "WAGI program wrote nothing to stdout; a CGI program must print headers, "
            "a blank line, then the body"
        )
    lines, body_start = _split_header_lines(stdout)

    status: int | None = None
    has_content_type = has_location = False
    headers: list[tuple[str, str]] = []
    for raw in lines:
        line = raw.decode("utf-8", "surrogateescape")
        name, sep, value = line.partition(":")
        if not sep:
            raise BadResponse(f"WAGI output has a header line without ':': {_show(line)}")
        name = name.strip(" \t")
        value = value.strip(" \t")
        if not _TOKEN.fullmatch(name):
            raise BadResponse(f"WAGI output has an invalid header name: {_show(name)}")
        if _BAD_VALUE_CHAR.search(value):
            raise BadResponse(
                f"WAGI output header {name!r} has a control character (CR, LF, NUL, ...) "
                f"in its value: {_show(value)}"
            )
        lname = name.lower()
        if lname == "status":
            if status is not None:
                raise BadResponse("WAGI output has more than one Status header")
            status = _parse_status(value)
            continue
        if lname in _FRAMING_RESPONSE_HEADERS:
            continue
        if lname == "content-type":
            if has_content_type:
                raise BadResponse("WAGI output has more than one Content-Type header; it may have one")
            has_content_type = True
        elif lname == "location":
            if has_location:
                raise BadResponse("WAGI output has more than one Location header; it may have one")
            has_location = True
        headers.append((lname, value))

    if status is None and not has_content_type and not has_location:
        raise BadResponse(
            "WAGI output has no Content-Type, Status or Location header; a CGI program "
            "must print headers, a blank line, then the body"
        )
    if status is None:
        status = 302 if has_location else 200
    return Response(status=status, headers=tuple(headers), body=stdout[body_start:])


def _split_header_lines(stdout: bytes) -> tuple[list[bytes], int]:
    """Header lines (without line ends) and where the body starts; bounded work."""
    lines: list[bytes] = []
    pos = 0
    while True:
        # Never look further than the header limit allows, however long stdout is.
        # The header section is stdout[:start of the blank line], so the blank
        # line's LF can sit at most at MAX_HEADER_BYTES + 1 (after a CR).
        end = stdout.find(b"\n", pos, MAX_HEADER_BYTES + 2)
        if end < 0:
            if len(stdout) > MAX_HEADER_BYTES:
                raise _too_large()
            raise BadResponse(
                "WAGI output has no blank line after its headers; a CGI program must print "
                "headers, a blank line, then the body"
            )
        line = stdout[pos:end]
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            return lines, end + 1
        if end >= MAX_HEADER_BYTES:  # this line and its LF would pass the limit
            raise _too_large()
        lines.append(line)
        if len(lines) > MAX_HEADER_LINES:
            raise BadResponse(f"WAGI output has more than {MAX_HEADER_LINES} header lines")
        pos = end + 1


def _too_large() -> BadResponse:
    return BadResponse(
        f"WAGI output has no blank line within its first {MAX_HEADER_BYTES} bytes; "
        f"the header section is limited to {MAX_HEADER_BYTES} bytes"
    )


def _parse_status(value: str) -> int:
    """`404` or `404 Not Found` -> 404. The reason phrase is not kept: HTTP/1.1
    servers write their own and HTTP/2 has none."""
    match = _STATUS.fullmatch(value)
    code = int(match.group(1)) if match else 0
    if not 200 <= code <= 599:
        raise BadResponse(
            f"WAGI output has an invalid Status header {_show(value)}; "
            "expected a code from 200 to 599, optionally followed by a reason"
        )
    return code


def _show(text: str, limit: int = 80) -> str:
    """A guest-supplied string, cut short and repr'd, safe to put in a message."""
    return repr(text[:limit]) + ("..." if len(text) > limit else "")


def parse_routes(stdout: bytes, exports: Collection[str]) -> tuple[Route, ...]:
    """Read what a module's `_routes` export printed: lines of `SUBPATH EXPORT`.

    A SUBPATH ending in "/..." is a prefix route (stored without the suffix;
    "/..." alone is stored as the prefix "/", which matches every path). A
    route declared twice keeps its last export, as in WAGI. Blank lines are
    skipped; no output at all means no sub-routes (WAGI refuses empty output).
    Anything else that is wrong is the module's fault: `InvalidModule`.
    """
    if len(stdout) > MAX_ROUTES_BYTES:
        raise InvalidModule(f"_routes printed more than {MAX_ROUTES_BYTES} bytes")
    try:
        text = stdout.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidModule("_routes printed text that is not UTF-8") from None

    routes: dict[tuple[str, bool], Route] = {}
    for line in text.split("\n"):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise InvalidModule(
                f"_routes printed a malformed line {_show(line.strip())}; expected 'SUBPATH EXPORT'"
            )
        subpath, export = fields
        if not _ROUTE_PATH.fullmatch(subpath):
            raise InvalidModule(
                f"_routes printed a malformed line {_show(line.strip())}; SUBPATH must start "
                "with '/' and hold only visible ASCII without '?' or '#'"
            )
        if export not in exports:
            raise InvalidModule(
                f"_routes maps {_show(subpath)} to {_show(export)}, "
                "which the module does not export"
            )
        prefix = subpath.endswith("/...")
        path = (subpath[: -len("/...")] or "/") if prefix else subpath
        routes[(path, prefix)] = Route(path=path, export=export, prefix=prefix)
        if len(routes) > MAX_ROUTES:
            raise InvalidModule(f"_routes declared more than {MAX_ROUTES} routes")
    return tuple(routes.values())


def route_text(route: Route) -> str:
    """A route as `_routes` declares it ("/files/..."), e.g. for X_MATCHED_ROUTE."""
    if not route.prefix:
        return route.path
    return "/..." if route.path == "/" else route.path + "/..."


def match_route(routes: Sequence[Route], path: str) -> tuple[Route | None, str]:
    """The most specific route for `path` and the PATH_INFO that goes with it.

    `path` is the request path after the function prefix, undecoded (WAGI
    matches the raw URI path). Exact routes match only themselves; prefix
    "/files" matches "/files" and "/files/..." but not "/filesystem". The longest
    route path wins and an exact route beats a prefix of equal length (WAGI
    itself takes the last declared match). PATH_INFO follows WAGI: "" for an
    exact route, the rest after the prefix for a prefix route ("/files/a" ->
    "/a", "/files" -> ""; the root prefix "/..." leaves the whole path). No
    match gives `(None, path)`: the caller runs the default entrypoint.
    """
    best: Route | None = None
    for route in routes:
        if route.prefix:
            hit = route.path == "/" or path == route.path or path.startswith(route.path + "/")
        else:
            hit = path == route.path
        if hit and (best is None or _specificity(route) > _specificity(best)):
            best = route
    if best is None:
        return None, path
    if not best.prefix:
        return best, ""
    if best.path == "/":
        return best, path
    return best, path[len(best.path):]


def _specificity(route: Route) -> tuple[int, bool]:
    return len(route.path), not route.prefix
