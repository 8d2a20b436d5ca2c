"""Function routes: `ANY /fn/{name}[@version][/{path}]` hand the request to the function.

This is the hot path, so it is a plain ASGI app placed in front of Starlette's
router (`FunctionDispatch`), not a Starlette endpoint: no route table scan, no
Request/Response objects, headers sent as built. The function is resolved and the
caller's access checked before a byte of the body is read; the body is then read with
a hard cap (413 before reading past it), a deadline, and its bytes held in the server's
buffer budget (503 when they do not fit). A cheap call runs inline on the event
loop (`Host.invoke_inline`: memory tier, handler interface, within a small fuel
and host-call budget); anything else, or a call that overruns that budget, runs
in the bounded pool, where each function has its own cap on threads (`InvocationPool`).
A private function needs the admin token in `Authorization: Bearer`; a header that
carries a valid token is the host's, and is removed before the guest sees the
request. Every answer carries `Server-Timing` (queue wait, load
tier and time, instantiate, run) and `X-Request-Id`, which finds its logs.
"""

from __future__ import annotations

import logging
import os
import re
import time
from typing import Any, Awaitable, Callable
from ..errors import BadRequest, InternalError, NotFound, Overloaded, WasmhostError
from ..host import Host
from ..store.logs import InvocationRecord, LogStore
from ..models import FunctionVersion, Invocation, Request
from .auth import AdminAuth
from .bodies import DIGITS, receive_body
from .buffers import SMALL, BufferBudget
from .deadlines import Deadlines
from .errors import send_error
from .metrics import Metrics
from .pool import InvocationPool

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Framing and connection headers are the server's business, never the guest's.
# The host's own headers are the host's: a guest cannot set or shadow them either.
HOP_HEADERS = frozenset({b"content-length", b"transfer-encoding", b"connection", b"keep-alive", b"te",
                         b"trailer", b"upgrade", b"proxy-connection", b"server", b"date",
                         b"server-timing", b"x-request-id", b"x-wasmhost-version"})
NO_BODY_STATUSES = frozenset({204, 304})
REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")
# The request headers FunctionApp looks at; one set test skips every other header.
NOTED_HEADERS = frozenset({b"host", b"x-request-id", b"authorization", b"expect", b"content-length",
                           b"transfer-encoding"})
# RFC 9112 §3.2 / RFC 3986 §3.2.2: Host = uri-host [ ":" port ], uri-host an IP literal in
# brackets, or a reg-name of unreserved, pct-encoded and sub-delim characters (may be empty).
HOST_VALUE = re.compile(rb"(?:\[[0-9A-Za-z:._~%-]+\]|[0-9A-Za-z._~!$&'()*+,;=%-]*)(?::[0-9]*)?")
PREFIX = "/fn/"
SEND_PIECE = 256 * 1024  # a large answer is written this much at a time (see _send_large)
RAW_PREFIX = PREFIX.encode()

log = logging.getLogger("wasmhost.http")


def check_host(hosts: int, host: bytes, http_version: str) -> None:
    """BadRequest unless the request has exactly one Host header with a valid value (RFC 9112
    §3.2: a server MUST answer 400 otherwise); HTTP/1.0 may have none."""
    if hosts == 1 and HOST_VALUE.fullmatch(host):
        return
    if hosts == 0 and http_version == "1.0":
        return
    what = "no Host header" if hosts == 0 else f"{hosts} Host headers" if hosts > 1 else "an invalid Host header"
    raise BadRequest(f"the request has {what}: HTTP/1.1 needs exactly one Host, host[:port] (RFC 9112 §3.2)")


def host_headers(scope: Scope) -> tuple[int, bytes]:
    """How many Host headers a request has, and the last one's value."""
    hosts, host = 0, b""
    for key, value in scope["headers"]:
        if key == b"host":
            hosts += 1
            host = value
    return hosts, host


def parse_target(raw: str) -> tuple[str, int | None]:
    """`hello` or `hello@3` → (name, version)."""
    name, sep, version = raw.partition("@")
    if not sep:
        return name, None
    if not DIGITS.fullmatch(version) or int(version) < 1 or version.startswith("0"):
        raise BadRequest(f"invalid version {version[:20]!r} in {raw[:80]!r}: use NAME@N with N >= 1")
    return name, int(version)


def split_path(scope: Scope) -> tuple[str, str]:
    """(target, the path after `/fn/<target>` as received, still percent-encoded).

    Only the raw path is read, once: guests get it undecoded (an encoded `/`, `%2F`, stays
    distinct from a real one) and WAGI decodes PATH_INFO from it exactly once. A function
    name never contains `%`, so a name segment with one is refused rather than decoded:
    decoding it would decode the rest of the path too, and WAGI would then decode that a
    second time (`/fn/f%2F%252e%252e/x` reached a guest as PATH_INFO `/../x`).
    """
    raw = scope.get("raw_path")
    text = raw.decode("utf-8", "surrogateescape").split("?", 1)[0] if raw else scope["path"]
    rest = text[len(PREFIX):] if text.startswith(PREFIX) else text
    slash = rest.find("/")
    target, remainder = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
    if "%" in target:
        raise BadRequest(f"the function segment {target[:80]!r} of the path contains '%': function names are "
                         "a-z, 0-9 and '-', and the segment is never decoded; call /fn/<name>[@version]/<path>")
    return target, remainder


def guest_request(scope: Scope, target: str, path: str, body: bytes) -> Request:
    headers = scope["headers"]
    server = scope.get("server") or ("localhost", 80)
    server_name, server_port = str(server[0]), int(server[1] or 80)
    for key, value in headers:
        if key == b"host":
            host, _, port = value.decode("latin-1").rpartition(":")
            if not host or "]" in port:  # no port, or an IPv6 literal without one
                host, port = value.decode("latin-1"), ""
            server_name = host or server_name
            if DIGITS.fullmatch(port) and int(port) < 65536:
                server_port = int(port)
            break
    client = scope.get("client") or ("", 0)
    return Request(
        method=scope["method"],
        path=path,
        # UTF-8 with surrogateescape: any byte reaches the guest unchanged (ABI.md)
        query=scope.get("query_string", b"").decode("utf-8", "surrogateescape"),
        headers=tuple((k.decode("latin-1"), v.decode("utf-8", "surrogateescape")) for k, v in headers),
        body=body,
        script_name=PREFIX + target,
        scheme=scope.get("scheme", "http"),
        server_name=server_name,
        server_port=server_port,
        remote_addr=str(client[0]),
        http_version=scope.get("http_version", "1.1"),
    )


TIERS = {"memory": b"memory", "disk": b"disk", "compile": b"compile"}


def server_timing(inv: Invocation, queue_s: float, inline: bool) -> bytes:
    # bytes %-formatting: a third of the f-string-then-encode cost (bench/design-figures.md: server-timing)
    t = inv.timings
    tier = TIERS.get(inv.tier) or inv.tier.encode()
    if inline:
        return b'queue;desc="inline";dur=0.000, load;desc="%s";dur=%.3f, instantiate;dur=%.3f, run;dur=%.3f' % (
            tier, t.load * 1e3, t.instantiate * 1e3, t.run * 1e3)
    return b'queue;dur=%.3f, load;desc="%s";dur=%.3f, instantiate;dur=%.3f, run;dur=%.3f' % (
        queue_s * 1e3, tier, t.load * 1e3, t.instantiate * 1e3, t.run * 1e3)


class FunctionApp:
    """ASGI app for `/fn/...`: the ASGI-facing half of Host.invoke."""

    def __init__(self, host: Host, pool: InvocationPool, metrics: Metrics, logs: LogStore,
                 auth: AdminAuth, buffers: BufferBudget, deadlines: Deadlines, inline: bool = True) -> None:
        self.host = host
        self.deadlines = deadlines
        self.auth = auth
        self.pool = pool
        self.metrics = metrics
        self.logs = logs
        self.buffers = buffers
        self.inline = inline
        self._rss_at = 0.0
        # Request ids: a random 80-bit prefix per process and a counter, unique without a
        # syscall per request (bench/design-figures.md: request-ids).
        self._id_base = os.urandom(10).hex().encode()
        self._ids = 0
        self._hosts_seen: set[bytes] = set()  # Host values found valid (one regex per new value)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = b""
        framed = False  # a Content-Length or Transfer-Encoding: receive_body has work to do
        credential = False  # an Authorization header
        expects_continue = False  # the client may wait for `100 Continue` before sending its body
        hosts, host = 0, b""
        for key, value in scope["headers"]:
            if key in NOTED_HEADERS:  # one test for the headers nothing here needs
                if key == b"host":
                    hosts += 1
                    host = value
                elif key == b"x-request-id":
                    if not request_id:
                        request_id = value
                elif key == b"authorization":
                    credential = True
                elif key == b"expect":
                    expects_continue = True
                else:  # content-length, transfer-encoding
                    framed = True
        if not request_id or not REQUEST_ID.fullmatch(request_id):
            self._ids += 1
            request_id = b"%s%012x" % (self._id_base, self._ids)
        authorized = False
        if credential:
            kept = [(k, v) for k, v in scope["headers"] if k != b"authorization" or not self.auth.accepts(v)]
            if len(kept) != len(scope["headers"]):  # the host's credential: never the guest's to see
                authorized = True
                scope = {**scope, "headers": kept}
        body: bytes | None = None
        try:
            try:
                if hosts != 1 or host not in self._hosts_seen:
                    self._check_host(hosts, host, scope)
                target, path = split_path(scope)
                if not target:
                    raise NotFound("no function named in the path: call /fn/<name>")
                name, version = parse_target(target)
                # Who is called, and may the caller call it, before a byte of body is read (so
                # before uvicorn's `100 Continue`): a body for nobody is never buffered.
                fv = self.host.resolve(name, version, authorized)
                if framed or scope.get("http_version") not in ("1.0", "1.1"):
                    settings = self.host.settings
                    body = await receive_body(scope, receive, settings.max_request_bytes, settings.body_timeout_s,
                                              self.buffers, self.deadlines)
                else:
                    body = b""  # what receive_body answers for HTTP/1 without framing, without its await
                inv = None
                if self.inline and fv.abi == "handler":  # from the server's bytes: no Request unless on a worker
                    inv = self.host.invoke_inline(fv, scope["method"], path, scope.get("query_string", b""),
                                                  scope["headers"], body)
                queue_s, inline = 0.0, inv is not None
                if inv is None:
                    request = guest_request(scope, target, path, body)
                    slots = self.host.settings.function_slots(fv.concurrency)
                    self.metrics.queue_depth.inc()
                    try:
                        inv, queue_s = await self.pool.run(lambda: self._invoke(fv, request), fv.name, slots)
                    finally:
                        self.metrics.queue_depth.dec()
            except WasmhostError as exc:
                if exc.code == "overloaded":
                    self.metrics.overloaded.inc()
                # A body never read, from a client that may be waiting for `100 Continue` before
                # sending it: where the next request starts is unknown, so the connection ends.
                await send_error(send, exc, request_id, close=framed and expects_continue and body is None)
                return
            if inv.error is not None:
                assert isinstance(inv.error, WasmhostError)
                status, code = inv.error.http_status, inv.error.code
            else:
                assert inv.response is not None
                status, code = inv.response.status, None
            # The log record goes in before the answer, so a client that asks for its logs
            # right after the answer finds them; metrics are counted after it has gone.
            self._log(inv, status, code, request_id.decode())
            await self._respond(send, inv, queue_s, inline, request_id)
            self._count(inv, code, queue_s)
        finally:
            if body:
                self.buffers.give(len(body))

    def _check_host(self, hosts: int, host: bytes, scope: Scope) -> None:
        """RFC 9112 §3.2 for a request whose Host is not one already seen valid."""
        check_host(hosts, host, scope.get("http_version", "1.1"))
        if hosts == 1 and len(host) <= 300:  # a DNS name has at most 253 bytes: keep the cache small
            if len(self._hosts_seen) >= 256:
                self._hosts_seen.clear()
            self._hosts_seen.add(host)

    def _invoke(self, fv: FunctionVersion, request: Request) -> Invocation:
        self.metrics.in_flight.inc()
        try:
            return self.host.run(fv, request)
        finally:
            self.metrics.in_flight.dec()

    async def _respond(self, send: Send, inv: Invocation, queue_s: float, inline: bool,
                       request_id: bytes) -> None:
        ours = [(b"server-timing", server_timing(inv, queue_s, inline)), (b"x-request-id", request_id),
                (b"x-wasmhost-version", b"%d" % inv.version)]
        if inv.error is not None:
            assert isinstance(inv.error, WasmhostError)
            await send_error(send, inv.error, request_id, extra=ours)
            return
        response = inv.response
        assert response is not None
        status = response.status
        body = b"" if status in NO_BODY_STATUSES else response.body
        headers = []
        for k, v in response.headers:
            kb = k.encode("latin-1")
            if kb not in HOP_HEADERS:
                # surrogateescape: WAGI header bytes that are not UTF-8 reach the wire unchanged
                headers.append((kb, v.encode("utf-8", "surrogateescape")))
        if status not in NO_BODY_STATUSES:
            headers.append((b"content-length", b"%d" % len(body)))
        headers.extend(ours)
        if len(body) <= SMALL:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await self._send_large(send, status, headers, body, ours, request_id)

    async def _send_large(self, send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes,
                          ours: list[tuple[bytes, bytes]], request_id: bytes) -> None:
        """A body over SMALL, held in the buffer budget until the client has taken all but the
        last piece, and written a piece at a time: uvicorn waits for the client to drain each
        piece before it takes the next, and a client that stops reading is cut off by the
        protocol's send deadline (`LimitedHttpToolsProtocol`)."""
        try:
            self.buffers.take(len(body), what="an answer")
        except Overloaded as exc:
            self.metrics.overloaded.inc()
            await send_error(send, exc, request_id, extra=ours)
            return
        try:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            view = memoryview(body)
            for at in range(0, len(body), SEND_PIECE):
                await send({"type": "http.response.body", "body": view[at:at + SEND_PIECE],
                            "more_body": at + SEND_PIECE < len(body)})
        finally:
            self.buffers.give(len(body))

    def _count(self, inv: Invocation, code: str | None, queue_s: float) -> None:
        m = self.metrics
        m.invocation(inv.function, code or "ok", inv.timings.total, inv.tier, queue_s)
        if inv.tier == "compile":
            m.compile_seconds.inc(inv.timings.load)
        now = time.monotonic()
        if now - self._rss_at > 5:
            self._rss_at = now
            m.rss.set(m.process.memory_info().rss)

    def _log(self, inv: Invocation, status: int, code: str | None, request_id: str) -> None:
        # Calls that wrote nothing and succeeded are counted in the metrics, not logged:
        # a row per call cost a third of a call's event-loop time (bench/design-figures.md: log-rows).
        if inv.logs or code is not None or status >= 500:
            self.logs.add(InvocationRecord(request_id, inv.function, inv.version, time.time(), status, code,
                                           round(inv.timings.total * 1e3, 3), inv.tier, inv.fuel_used,
                                           inv.logs, inv.logs_truncated))


class FunctionDispatch:
    """`/fn/...` to the function app, everything else to the Starlette app."""

    def __init__(self, functions: FunctionApp, app: ASGIApp) -> None:
        self.functions = functions
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The raw path decides, as split_path reads it: "/fn%2Fx" is not a function call.
        raw = scope.get("raw_path")
        if raw.startswith(RAW_PREFIX) if raw is not None else scope["path"].startswith(PREFIX):
            try:
                await self.functions(scope, receive, send)
            except Exception:  # a bug of ours: a JSON 500, never a traceback
                log.exception("unhandled error on %s", scope["path"][:200])
                await send_error(send, InternalError("internal server error"), None)
            return
        try:  # (FunctionApp checks its own, on the way)
            check_host(*host_headers(scope), scope.get("http_version", "1.1"))
        except BadRequest as exc:
            await send_error(send, exc, None)
            return
        await self.app(scope, receive, send)

    @property
    def routes(self) -> list[Any]:
        """The Starlette routes (everything but `/fn/...`), for introspection."""
        return getattr(self.app, "routes", [])
