"""The pure WAGI/CGI rules: environment, argv, output parsing, `_routes`, route matching."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wasmhost import __version__
from wasmhost.abi import cgi
from wasmhost.abi.cgi import (
    MAX_HEADER_BYTES,
    MAX_HEADER_LINES,
    MAX_ROUTES,
    build_argv,
    build_environ,
    match_route,
    parse_output,
    parse_routes,
    route_text,
)
from wasmhost.errors import BadResponse, InvalidModule
from wasmhost.models import Request, Response, Route


def sample_request(**changes: object) -> Request:
    fields: dict[str, object] = {
        "method": "POST",
        "path": "/files/a%20b/c",
        "query": "x=1&y=%2F&&z",
        "headers": (
            ("host", "example.com:8080"),
            ("content-type", "application/json"),
            ("user-agent", "curl/8.0"),
            ("authorization", "Bearer secret"),
            ("proxy-authorization", "Basic c2VjcmV0"),
            ("connection", "keep-alive"),
            ("accept", "text/html"),
            ("accept", "application/json"),
            ("x-forwarded-for", "10.0.0.1"),
        ),
        "body": b'{"a": 1}',
        "script_name": "/fn/hello",
        "scheme": "http",
        "server_name": "example.com",
        "server_port": 8080,
        "remote_addr": "192.0.2.7",
        "http_version": "1.1",
    }
    fields.update(changes)
    return Request(**fields)  # type: ignore[arg-type]


def environ_for(
    request: Request, config: dict[str, str] | None = None, **kw: str
) -> dict[str, str]:
    args = {
        "script_name": "/fn/hello/files",
        "path_info": "/a b/c",
        "matched_route": "/fn/hello/files/...",
        "raw_path_info": "/a%20b/c",
    }
    args.update(kw)
    return build_environ(request, config=config or {}, **args)


# ---------------------------------------------------------------- environment


def test_every_cgi_variable_for_a_sample_request() -> None:
    env = environ_for(sample_request())
    assert env == {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/a b/c",
        "PATH_TRANSLATED": "/a b/c",
        "QUERY_STRING": "x=1&y=%2F&&z",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": "8",
        "SCRIPT_NAME": "/fn/hello/files",
        "SERVER_NAME": "example.com",
        "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_SOFTWARE": f"wasmhost/{__version__}",
        "GATEWAY_INTERFACE": "CGI/1.1",
        "REMOTE_ADDR": "192.0.2.7",
        "REMOTE_HOST": "192.0.2.7",
        "AUTH_TYPE": "",
        "REMOTE_USER": "",
        "X_FULL_URL": "http://example.com:8080/fn/hello/files/a%20b/c?x=1&y=%2F&&z",
        "X_MATCHED_ROUTE": "/fn/hello/files/...",
        "X_RAW_PATH_INFO": "/a%20b/c",
        "HTTP_HOST": "example.com:8080",
        "HTTP_CONTENT_TYPE": "application/json",
        "HTTP_USER_AGENT": "curl/8.0",
        "HTTP_ACCEPT": "text/html, application/json",
        "HTTP_X_FORWARDED_FOR": "10.0.0.1",
    }


def test_secrets_and_connection_headers_are_not_passed() -> None:
    env = environ_for(sample_request())
    assert "HTTP_AUTHORIZATION" not in env
    assert "HTTP_PROXY_AUTHORIZATION" not in env
    assert "HTTP_CONNECTION" not in env
    assert "Bearer secret" not in env.values()


def test_config_comes_first_and_cgi_variables_win() -> None:
    config = {
        "GREETING": "hi", "REQUEST_METHOD": "DELETE", "HTTP_ACCEPT": "x", "PATH_INFO": "/evil",
    }
    env = environ_for(sample_request(), config)
    assert env["GREETING"] == "hi"
    assert env["REQUEST_METHOD"] == "POST"
    assert env["HTTP_ACCEPT"] == "text/html, application/json"
    assert env["PATH_INFO"] == "/a b/c"
    assert next(iter(env)) == "GREETING"  # config first


def test_config_value_survives_when_no_cgi_variable_has_its_name() -> None:
    env = environ_for(sample_request(headers=()), {"HTTP_X_FEATURE": "on"})
    assert env["HTTP_X_FEATURE"] == "on"


def test_header_names_are_mapped_to_http_variables() -> None:
    request = sample_request(headers=(("x-request-id", "abc"), ("dnt", "1"), ("X-Mixed-Case", "M")))
    env = environ_for(request)
    assert env["HTTP_X_REQUEST_ID"] == "abc"
    assert env["HTTP_DNT"] == "1"
    assert env["HTTP_X_MIXED_CASE"] == "M"


def test_header_names_with_underscores_cannot_spoof_their_dash_twin() -> None:
    request = sample_request(headers=(("x_user", "admin"), ("x-user", "alice")))
    assert environ_for(request)["HTTP_X_USER"] == "alice"
    assert "HTTP_X_USER" not in environ_for(sample_request(headers=(("x_user", "admin"),)))


def test_repeated_cookie_headers_join_with_semicolon() -> None:
    request = sample_request(headers=(("cookie", "a=1"), ("cookie", "b=2")))
    assert environ_for(request)["HTTP_COOKIE"] == "a=1; b=2"


def test_content_type_empty_and_length_zero_without_body() -> None:
    env = environ_for(sample_request(method="GET", headers=(), body=b""))
    assert env["CONTENT_TYPE"] == ""
    assert env["CONTENT_LENGTH"] == "0"


def test_content_length_is_the_real_body_length_not_the_header() -> None:
    env = environ_for(sample_request(headers=(("content-length", "999"),), body=b"abc"))
    assert env["CONTENT_LENGTH"] == "3"


@pytest.mark.parametrize(
    ("scheme", "port", "expected"),
    [
        ("http", 80, "http://example.com/fn/hello/files/a%20b/c"),
        ("https", 443, "https://example.com/fn/hello/files/a%20b/c"),
        ("https", 80, "https://example.com:80/fn/hello/files/a%20b/c"),
    ],
)
def test_full_url_omits_only_the_default_port(scheme: str, port: int, expected: str) -> None:
    env = environ_for(sample_request(scheme=scheme, server_port=port, query=""))
    assert env["X_FULL_URL"] == expected
    assert env["SERVER_PORT"] == str(port)


def test_full_url_brackets_ipv6_hosts() -> None:
    env = environ_for(sample_request(server_name="::1", server_port=8000, query="q"))
    assert env["X_FULL_URL"] == "http://[::1]:8000/fn/hello/files/a%20b/c?q"


def test_http2_protocol_name() -> None:
    assert environ_for(sample_request(http_version="2"))["SERVER_PROTOCOL"] == "HTTP/2"


def test_nul_bytes_and_bad_config_keys_are_dropped() -> None:
    config = {
        "GOOD": "yes",
        "A=B": "x",
        "NUL\0KEY": "x",
        "NULVAL": "a\0b",
        "": "empty",
        "SURROGATE": "\udcff",
    }
    request = sample_request(headers=(("x-bad", "a\0b"), ("x-ok", "fine")))
    env = environ_for(request, config)
    assert env["GOOD"] == "yes"
    for key in ("A=B", "NUL\0KEY", "NULVAL", "", "SURROGATE", "HTTP_X_BAD"):
        assert key not in env
    assert env["HTTP_X_OK"] == "fine"
    for key, value in env.items():
        assert "\0" not in key and "=" not in key and "\0" not in value


def test_a_cgi_variable_that_must_be_dropped_takes_the_config_value_with_it() -> None:
    env = environ_for(sample_request(), {"PATH_INFO": "/from-config"}, path_info="/a\0b")
    assert "PATH_INFO" not in env
    assert "PATH_TRANSLATED" not in env
    assert env["X_RAW_PATH_INFO"] == "/a%20b/c"


@given(
    config=st.dictionaries(st.text(), st.text(), max_size=8),
    headers=st.lists(st.tuples(st.text(), st.text()), max_size=8),
    path_info=st.text(),
)
def test_environment_is_always_valid_wasi(
    config: dict[str, str], headers: list[tuple[str, str]], path_info: str
) -> None:
    env = environ_for(sample_request(headers=tuple(headers)), config, path_info=path_info)
    for key, value in env.items():
        assert key and "=" not in key and "\0" not in key and "\0" not in value
        key.encode("utf-8"), value.encode("utf-8")
    assert env["REQUEST_METHOD"] == "POST"


# ---------------------------------------------------------------- argv


def test_argv_is_script_then_raw_query_items() -> None:
    assert build_argv(sample_request(), "/fn/hello") == ["/fn/hello", "x=1", "y=%2F", "z"]


@pytest.mark.parametrize(
    ("query", "args"),
    [("", []), ("&", []), ("a", ["a"]), ("a+b&c=%26", ["a+b", "c=%26"])],
)
def test_argv_query_splitting(query: str, args: list[str]) -> None:
    assert build_argv(sample_request(query=query), "/s") == ["/s", *args]


def test_argv_has_no_nul() -> None:
    assert build_argv(sample_request(query="a\0&b"), "/s\0x") == ["/sx", "b"]


# ---------------------------------------------------------------- parse_output


def test_lf_output() -> None:
    out = parse_output(b"Content-Type: text/plain\n\nhello\n")
    assert out == Response(200, (("content-type", "text/plain"),), b"hello\n")


def test_crlf_output() -> None:
    out = parse_output(b"Content-Type: text/html\r\nX-A: 1\r\n\r\n<p>hi</p>\r\n")
    assert out == Response(200, (("content-type", "text/html"), ("x-a", "1")), b"<p>hi</p>\r\n")


@pytest.mark.parametrize("sep", [b"\n\r\n", b"\r\n\n", b"\n\n", b"\r\n\r\n"])
def test_mixed_line_endings(sep: bytes) -> None:
    out = parse_output(b"Content-Type: a/b\r\nX-One: 1\nX-Two: 2" + sep + b"body")
    assert out.headers == (("content-type", "a/b"), ("x-one", "1"), ("x-two", "2"))
    assert out.body == b"body"


def test_body_is_kept_byte_for_byte() -> None:
    body = b"\n\r\n\x00\xff\xfe binary\n\nStatus: 500\n\n" + bytes(range(256))
    out = parse_output(b"Content-Type: application/octet-stream\n\n" + body)
    assert out.body == body
    assert out.status == 200


def test_empty_body() -> None:
    assert parse_output(b"Status: 204\n\n") == Response(204, (), b"")


@pytest.mark.parametrize(
    "line", [b"Status: 404 Not Found", b"Status: 404", b"status:404", b"STATUS:  404   Gone  "]
)
def test_status_sets_the_status_and_is_not_a_header(line: bytes) -> None:
    out = parse_output(line + b"\nContent-Type: text/plain\n\nnope")
    assert out.status == 404
    assert out.headers == (("content-type", "text/plain"),)


def test_status_alone_is_enough() -> None:
    assert parse_output(b"Status: 500 Internal Server Error\n\noops").status == 500


def test_location_without_status_is_a_302() -> None:
    out = parse_output(b"Location: https://example.com/next\n\n")
    assert out.status == 302
    assert out.headers == (("location", "https://example.com/next"),)


@pytest.mark.parametrize("order", ["status-first", "location-first"])
def test_location_with_status_keeps_the_status(order: str) -> None:
    lines = [b"Status: 301 Moved Permanently", b"Location: /new"]
    if order == "location-first":
        lines.reverse()
    out = parse_output(b"\n".join(lines) + b"\n\n")
    assert out.status == 301
    assert out.headers == (("location", "/new"),)


def test_repeated_headers_are_all_kept_in_order() -> None:
    out = parse_output(
        b"Set-Cookie: a=1; Path=/\nContent-Type: text/plain\nset-cookie: b=2\nSET-COOKIE: c=3\n\n"
    )
    cookies = [v for k, v in out.headers if k == "set-cookie"]
    assert cookies == ["a=1; Path=/", "b=2", "c=3"]


def test_header_names_are_lower_cased_and_values_trimmed() -> None:
    out = parse_output(b"Content-Type:text/plain\nX-Thing :\t spaced value \t\n\n")
    assert out.headers == (("content-type", "text/plain"), ("x-thing", "spaced value"))


def test_empty_header_value_is_allowed() -> None:
    assert parse_output(b"Content-Type: text/plain\nX-Empty:\n\n").headers[1] == ("x-empty", "")


def test_non_ascii_header_bytes_survive_unchanged() -> None:
    out = parse_output("Content-Type: text/plain\nX-Name: caf\xe9\n\n".encode("latin-1"))
    assert out.headers[1][1].encode("utf-8", "surrogateescape") == b"caf\xe9"
    out = parse_output("Content-Type: text/plain\nX-Name: caf\xe9\n\n".encode("utf-8"))
    assert out.headers[1] == ("x-name", "caf\xe9")
    assert out.headers[1][1].encode("utf-8", "surrogateescape") == "caf\xe9".encode()


@pytest.mark.parametrize("name", ["Content-Type", "Location"])
def test_a_second_content_type_or_location_is_refused(name: str) -> None:
    out = f"{name}: text/plain\n{name.lower()}: text/html\n\nbody".encode()
    with pytest.raises(BadResponse, match=f"more than one {name} header"):
        parse_output(out)


def test_framing_headers_from_the_guest_are_dropped() -> None:
    out = parse_output(
        b"Content-Type: text/plain\nContent-Length: 999\nTransfer-Encoding: chunked\n"
        b"Connection: close\nX-Kept: 1\n\nabc"
    )
    assert out.headers == (("content-type", "text/plain"), ("x-kept", "1"))


def test_no_content_type_status_or_location() -> None:
    with pytest.raises(BadResponse) as info:
        parse_output(b"X-Only: 1\n\nbody")
    assert info.value.message == (
        "WAGI output has no Content-Type, Status or Location header; a CGI program must print "
        "headers, a blank line, then the body"
    )


def test_plain_text_without_headers_is_refused() -> None:
    with pytest.raises(BadResponse, match="header line without ':'"):
        parse_output(b"hello world\n\n")


def test_body_only_after_leading_blank_line_is_refused() -> None:
    with pytest.raises(BadResponse, match="no Content-Type, Status or Location"):
        parse_output(b"\nhello")


@pytest.mark.parametrize(
    "out",
    [b"Content-Type: text/plain\n", b"Content-Type: text/plain", b"Content-Type: a\r\nX: 1\r\n"],
)
def test_missing_blank_line(out: bytes) -> None:
    with pytest.raises(BadResponse, match="no blank line after its headers"):
        parse_output(out)


def test_empty_output() -> None:
    with pytest.raises(BadResponse, match="wrote nothing"):
        parse_output(b"")


def test_line_without_colon_is_named_and_truncated() -> None:
    line = "this is not a header " + "x" * 200
    with pytest.raises(BadResponse) as info:
        parse_output(b"Content-Type: text/plain\n" + line.encode() + b"\n\n")
    assert repr(line[:80]) in info.value.message
    assert "x" * 100 not in info.value.message


@pytest.mark.parametrize(
    "status",
    [
        b"abc", b"", b"99", b"1000", b"600", b"100 Continue", b"101", b"-200", b"20x",
        b"2\xd9\xa00",  # ARABIC-INDIC ZERO: a digit to str.isdigit, not to a status line
        b" 4 04",
    ],
)
def test_invalid_status(status: bytes) -> None:
    with pytest.raises(BadResponse, match="invalid Status"):
        parse_output(b"Status: " + status + b"\nContent-Type: text/plain\n\n")


def test_two_status_headers_are_ambiguous() -> None:
    with pytest.raises(BadResponse, match="more than one Status"):
        parse_output(b"Status: 200\nStatus: 404\n\n")


@pytest.mark.parametrize(
    "line",
    [
        b"X-Evil: a\rSet-Cookie: pwned=1",  # bare CR: response splitting
        b"X-Evil: a\x00b",
        b"X-Evil: a\x0bb",
        b"X-Evil: a\x7fb",
        b"Location: /x\r\r\nSet-Cookie: pwned=1",
    ],
)
def test_header_injection_in_values_is_refused(line: bytes) -> None:
    with pytest.raises(BadResponse, match="control character"):
        parse_output(b"Content-Type: text/plain\n" + line + b"\n\n")


@pytest.mark.parametrize(
    "line", [b"X Evil: 1", b": no name", b"X\x00: 1", b"Caf\xe9: 1", b"(x): 1", b"X\rY: 1"]
)
def test_invalid_header_names_are_refused(line: bytes) -> None:
    with pytest.raises(BadResponse, match="invalid header name"):
        parse_output(b"Content-Type: text/plain\n" + line + b"\n\n")


def test_folded_continuation_line_does_not_become_a_separate_header() -> None:
    # obs-fold (RFC 9112 §5.2) is not supported; a folded line is refused unless it parses as
    # a header in its own right, and then it is just that header.
    with pytest.raises(BadResponse):
        parse_output(b"Content-Type: text/plain\n  continued\n\n")


def _padded_header_section(size: int, eol: bytes = b"\n") -> bytes:
    head = b"Content-Type: text/plain" + eol + b"X-Pad: "
    pad = size - len(head) - len(eol)
    section = head + b"p" * pad + eol
    assert len(section) == size
    return section


@pytest.mark.parametrize("eol", [b"\n", b"\r\n"])
def test_header_section_at_the_limit_is_accepted(eol: bytes) -> None:
    out = parse_output(_padded_header_section(MAX_HEADER_BYTES, eol) + eol + b"body")
    assert out.body == b"body"
    assert len(out.headers[1][1]) > 60_000


@pytest.mark.parametrize("eol", [b"\n", b"\r\n"])
def test_header_section_over_the_limit_is_refused(eol: bytes) -> None:
    with pytest.raises(BadResponse, match=f"first {MAX_HEADER_BYTES} bytes"):
        parse_output(_padded_header_section(MAX_HEADER_BYTES + 1, eol) + eol + b"body")


def test_huge_output_without_newline_is_refused_quickly() -> None:
    with pytest.raises(BadResponse, match="header section is limited"):
        parse_output(b"Content-Type: text/plain" + b"x" * 50_000_000)


def test_big_body_is_fine() -> None:
    body = b"\n" * 1_000_000
    assert parse_output(b"Content-Type: a/b\n\n" + body).body == body


def test_header_line_limit() -> None:
    lines = b"Content-Type: a/b\n" + b"X: 1\n" * (MAX_HEADER_LINES - 1)
    assert len(parse_output(lines + b"\n").headers) == MAX_HEADER_LINES
    with pytest.raises(BadResponse, match=f"more than {MAX_HEADER_LINES} header lines"):
        parse_output(lines + b"X: 1\n\n")


@settings(max_examples=500)
@given(st.binary(max_size=2000))
def test_any_bytes_give_a_response_or_bad_response(data: bytes) -> None:
    try:
        out = parse_output(data)
    except BadResponse:
        return
    assert isinstance(out, Response)
    _assert_clean(out)


_PIECES = st.sampled_from(
    [b"Content-Type: text/plain", b"Status: ", b"Location: /", b"Set-Cookie: a", b"404", b"200 OK",
     b"\n", b"\r\n", b"\r", b":", b" ", b"\t", b"\x00", b"\xff", b"X-A", b"status", b"a" * 70]
)


@settings(max_examples=1000)
@given(st.lists(st.one_of(_PIECES, st.binary(max_size=4)), max_size=40).map(b"".join))
def test_header_shaped_bytes_give_a_response_or_bad_response(data: bytes) -> None:
    try:
        out = parse_output(data)
    except BadResponse:
        return
    _assert_clean(out)


def _assert_clean(out: Response) -> None:
    assert 200 <= out.status <= 599
    for name, value in out.headers:
        assert cgi._TOKEN.fullmatch(name) and name == name.lower() and name != "status"
        assert not any(c in value for c in "\r\n\0")
        value.encode("utf-8", "surrogateescape")


# Round trip: serialize generated headers + body, parse, get them back.
_TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_names = st.text(alphabet=_TCHARS, min_size=1, max_size=20).filter(
    lambda n: n.lower() != "status" and n.lower() not in cgi._FRAMING_RESPONSE_HEADERS
)
_value_chars = st.sampled_from(
    ["\t", *map(chr, range(0x20, 0x7F)), *map(chr, range(0x80, 0x100))]
)
_values = st.text(alphabet=_value_chars, max_size=40).map(lambda v: v.strip(" \t"))


@given(
    headers=st.lists(st.tuples(_names, _values), max_size=12),
    body=st.binary(max_size=500),
    status=st.one_of(st.none(), st.integers(200, 599)),
    crlf=st.lists(st.booleans(), min_size=14, max_size=14),
)
def test_round_trip(
    headers: list[tuple[str, str]], body: bytes, status: int | None, crlf: list[bool]
) -> None:
    headers = [("Content-Type", "text/plain"), *headers]
    lines = [f"{n}: {v}" for n, v in headers]
    if status is not None:
        lines.insert(len(lines) // 2, f"Status: {status} Whatever")
    eols = [b"\r\n" if c else b"\n" for c in crlf]
    head = b"".join(line.encode("latin-1") + eol for line, eol in zip(lines, eols))
    data = head + eols[-1] + body
    out = parse_output(data)
    assert out.headers == tuple((n.lower(), v.encode("latin-1").decode("utf-8", "surrogateescape"))
                                for n, v in headers)
    assert out.body == body
    assert out.status == (200 if status is None else status)


# ---------------------------------------------------------------- _routes


EXPORTS = ("_start", "_routes", "hello", "goodbye", "files", "memory")


def test_parse_routes() -> None:
    text = b"/hello hello\n\n  /goodbye/...\tgoodbye  \r\n/main _start\n/... files\n"
    routes = parse_routes(text, EXPORTS)
    assert routes == (
        Route("/hello", "hello", False),
        Route("/goodbye", "goodbye", True),
        Route("/main", "_start", False),
        Route("/", "files", True),
    )


def test_empty_routes_output_means_no_routes() -> None:
    assert parse_routes(b"", EXPORTS) == ()
    assert parse_routes(b"\n \n", EXPORTS) == ()


def test_redeclared_route_keeps_the_last_export() -> None:
    assert parse_routes(b"/a hello\n/a goodbye\n/a/... files\n", EXPORTS) == (
        Route("/a", "goodbye", False),
        Route("/a", "files", True),
    )


def test_unknown_export_is_named() -> None:
    with pytest.raises(InvalidModule, match="'missing'"):
        parse_routes(b"/hello hello\n/x missing\n", EXPORTS)


@pytest.mark.parametrize(
    "line",
    [
        b"/hello", b"/hello hello extra", b"hello hello", b"/a?b hello", b"/a#b hello",
        b"/caf\xc3\xa9 hello", b"* hello",
    ],
)
def test_malformed_route_lines_are_named(line: bytes) -> None:
    with pytest.raises(InvalidModule) as info:
        parse_routes(b"/ok hello\n" + line + b"\n", EXPORTS)
    assert "malformed line" in info.value.message
    assert repr(line.decode().strip()[:80]) in info.value.message


def test_routes_must_be_utf8() -> None:
    with pytest.raises(InvalidModule, match="not UTF-8"):
        parse_routes(b"/a hello\n\xff\n", EXPORTS)


def test_route_count_is_bounded() -> None:
    ok = b"".join(b"/r%d hello\n" % i for i in range(MAX_ROUTES))
    assert len(parse_routes(ok, EXPORTS)) == MAX_ROUTES
    with pytest.raises(InvalidModule, match=f"more than {MAX_ROUTES} routes"):
        parse_routes(ok + b"/one-more hello\n", EXPORTS)


def test_routes_output_size_is_bounded() -> None:
    with pytest.raises(InvalidModule, match="more than"):
        parse_routes(b"\n" * (cgi.MAX_ROUTES_BYTES + 1), EXPORTS)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_parse_routes_raises_only_invalid_module(data: bytes) -> None:
    try:
        routes = parse_routes(data, EXPORTS)
    except InvalidModule:
        return
    for route in routes:
        assert route.path.startswith("/") and route.export in EXPORTS


@pytest.mark.parametrize("text", ["/a", "/a/...", "/...", "/", "/a/"])
def test_route_text_round_trips(text: str) -> None:
    (route,) = parse_routes(f"{text} hello".encode(), EXPORTS)
    assert route_text(route) == text


# ---------------------------------------------------------------- match_route


ROUTES = (
    Route("/files", "files", True),
    Route("/files/special", "hello", False),
    Route("/files/deep", "goodbye", True),
    Route("/hello", "hello", False),
    Route("/", "_start", False),
)


@pytest.mark.parametrize(
    ("path", "export", "path_info"),
    [
        ("/hello", "hello", ""),
        ("/files", "files", ""),
        ("/files/", "files", "/"),
        ("/files/x/y", "files", "/x/y"),
        ("/files/special", "hello", ""),
        ("/files/special/more", "files", "/special/more"),
        ("/files/deep", "goodbye", ""),
        ("/files/deep/down", "goodbye", "/down"),
        ("/files/deeper", "files", "/deeper"),
        ("/", "_start", ""),
    ],
)
def test_most_specific_route_wins(path: str, export: str, path_info: str) -> None:
    route, info = match_route(ROUTES, path)
    assert route is not None and route.export == export
    assert info == path_info


@pytest.mark.parametrize("path", ["/filesystem", "/hello/", "/hello/x", "/nothing", "/Hello"])
def test_no_match_returns_the_whole_path(path: str) -> None:
    assert match_route(ROUTES, path) == (None, path)


def test_exact_beats_prefix_of_equal_length() -> None:
    routes = (Route("/a", "files", True), Route("/a", "hello", False))
    assert match_route(routes, "/a") == (Route("/a", "hello", False), "")
    assert match_route(routes, "/a/b") == (Route("/a", "files", True), "/b")


def test_order_does_not_matter() -> None:
    for path in ("/files/deep/down", "/files/special", "/hello", "/files/x"):
        assert match_route(ROUTES, path) == match_route(tuple(reversed(ROUTES)), path)


def test_root_prefix_matches_everything_and_leaves_the_whole_path() -> None:
    routes = (Route("/", "files", True), Route("/hello", "hello", False))
    assert match_route(routes, "/") == (routes[0], "/")
    assert match_route(routes, "/x/y") == (routes[0], "/x/y")
    assert match_route(routes, "/hello") == (routes[1], "")


def test_trailing_slash_is_significant_for_exact_routes() -> None:
    routes = (Route("/a/", "hello", False),)
    assert match_route(routes, "/a/")[0] == routes[0]
    assert match_route(routes, "/a") == (None, "/a")


def test_no_routes() -> None:
    assert match_route((), "/x") == (None, "/x")


@given(st.text(alphabet="/ab.", max_size=12))
def test_script_name_plus_path_info_is_the_path(path: str) -> None:
    path = "/" + path
    routes = parse_routes(b"/a hello\n/a/... files\n/a/b/... goodbye\n/b/ _start\n", EXPORTS)
    route, info = match_route(routes, path)
    script = path[: len(path) - len(info)]
    assert script + info == path
    if route is None or (route.prefix and route.path == "/"):
        assert script == ""
    else:
        assert script == route.path
