"""Function routes: `ANY /fn/{name}[@version][/{path}]` hand the request to the function.

The request body is read with a hard cap (413 before reading past it), the call
runs in the bounded pool, and every answer carries `Server-Timing` (queue wait,
load tier and time, instantiate, run) and `X-Request-Id`, which finds its logs.
"""

from __future__ import annotations

import re
import time
import uuid

from starlette.requests import Request as HttpRequest
from starlette.responses import Response as HttpResponse

from ..errors import BadRequest, TooLarge, WasmhostError
from ..host import Host
from ..logstore import InvocationRecord, LogStore
from ..models import Invocation, Request
from .errors import error_response
from .metrics import Metrics
from .pool import InvocationPool

# Framing and connection headers are the server's business, never the guest's.
# The host's own headers are the host's: a guest cannot set or shadow them either.
HOP_HEADERS = frozenset({b"content-length", b"transfer-encoding", b"connection", b"keep-alive", b"te",
                         b"trailer", b"upgrade", b"proxy-connection", b"server", b"date",
                         b"server-timing", b"x-request-id", b"x-wasmhost-version"})
NO_BODY_STATUSES = frozenset({204, 304})
DIGITS = re.compile(r"[0-9]{1,18}")
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


async def read_body(request: HttpRequest, limit: int) -> bytes:
    """The whole body, or TooLarge as soon as it is known to pass `limit`."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not DIGITS.fullmatch(declared.strip()):
            raise BadRequest("invalid Content-Length header")
        if int(declared) > limit:
            raise TooLarge(f"request body of {int(declared)} bytes exceeds the limit of {limit} bytes",
                           limit=limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"request body exceeds the limit of {limit} bytes", limit=limit)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_target(raw: str) -> tuple[str, int | None]:
    """`hello` or `hello@3` → (name, version)."""
    name, sep, version = raw.partition("@")
    if not sep:
        return name, None
    if not DIGITS.fullmatch(version) or int(version) < 1 or version.startswith("0"):
        raise BadRequest(f"invalid version {version[:20]!r} in {raw[:80]!r}: use NAME@N with N >= 1")
    return name, int(version)


def raw_remainder(scope: dict, decoded: str) -> str:
    """The path after `/fn/<target>` as received (still percent-encoded): guests get
    the raw path, so an encoded `/` (%2F) stays distinguishable from a real one."""
    raw = scope.get("raw_path")
    if not raw:
        return "/" + decoded
    text = raw.decode("utf-8", "surrogateescape").split("?", 1)[0]
    rest = text[len("/fn/"):] if text.startswith("/fn/") else text
    slash = rest.find("/")
    if "%" in rest[: slash if slash >= 0 else len(rest)]:
        return "/" + decoded  # an encoded character in the name: raw and decoded paths disagree
    return rest[slash:] if slash >= 0 else "/"


def to_guest_request(request: HttpRequest, target: str, path: str, body: bytes) -> Request:
    scope = request.scope
    server = scope.get("server") or ("localhost", 80)
    host_header = request.headers.get("host", "")
    server_name, _, port = host_header.rpartition(":") if host_header.count(":") == 1 else (host_header, "", "")
    client = scope.get("client") or ("", 0)
    return Request(
        method=request.method,
        path=raw_remainder(scope, path),
        # UTF-8 with surrogateescape: any byte reaches the guest unchanged (ABI.md)
        query=scope.get("query_string", b"").decode("utf-8", "surrogateescape"),
        headers=tuple((k.decode("latin-1"), v.decode("utf-8", "surrogateescape")) for k, v in scope["headers"]),
        body=body,
        script_name=f"/fn/{target}",
        scheme=scope.get("scheme", "http"),
        server_name=server_name or str(server[0]),
        server_port=int(port) if DIGITS.fullmatch(port) and int(port) < 65536 else int(server[1] or 80),
        remote_addr=str(client[0]),
        http_version=scope.get("http_version", "1.1"),
    )


def server_timing(inv: Invocation, queue_s: float) -> str:
    t = inv.timings
    return (f'queue;dur={queue_s * 1e3:.3f}, load;desc="{inv.tier}";dur={t.load * 1e3:.3f}, '
            f"instantiate;dur={t.instantiate * 1e3:.3f}, run;dur={t.run * 1e3:.3f}")


class FunctionEndpoint:
    """The ASGI-facing half of Host.invoke."""

    def __init__(self, host: Host, pool: InvocationPool, metrics: Metrics, logs: LogStore) -> None:
        self.host = host
        self.pool = pool
        self.metrics = metrics
        self.logs = logs
        self._rss_at = 0.0

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request.headers.get("x-request-id", "")
        if not REQUEST_ID.fullmatch(request_id):
            request_id = uuid.uuid4().hex
        request.state.request_id = request_id
        target = request.path_params["name"]
        try:
            name, version = parse_target(target)
            body = await read_body(request, self.host.settings.max_request_bytes)
            guest_request = to_guest_request(request, target, request.path_params.get("path", ""), body)
            self.metrics.queue_depth.inc()
            try:
                inv, queue_s = await self.pool.run(lambda: self._invoke(name, guest_request, version))
            finally:
                self.metrics.queue_depth.dec()
        except WasmhostError as exc:
            if exc.code == "overloaded":
                self.metrics.overloaded.inc()
            return error_response(exc, request_id)
        return self._respond(inv, queue_s, request_id)

    def _invoke(self, name: str, request: Request, version: int | None) -> Invocation:
        self.metrics.in_flight.inc()
        try:
            return self.host.invoke(name, request, version)
        finally:
            self.metrics.in_flight.dec()

    def _respond(self, inv: Invocation, queue_s: float, request_id: str) -> HttpResponse:
        timing = server_timing(inv, queue_s)
        extra = {"server-timing": timing, "x-request-id": request_id,
                 "x-wasmhost-version": str(inv.version)}
        if inv.error is not None:
            assert isinstance(inv.error, WasmhostError)
            response: HttpResponse = error_response(inv.error, request_id)
            response.headers.update(extra)
            status, code = inv.error.http_status, inv.error.code
        else:
            assert inv.response is not None
            status = inv.response.status
            body = b"" if status in NO_BODY_STATUSES else inv.response.body
            response = HttpResponse(body, status_code=status)
            raw = [(k, v) for k, v in response.raw_headers if k != b"content-type"]
            if status in NO_BODY_STATUSES:
                raw = [(k, v) for k, v in raw if k != b"content-length"]
            for k, v in inv.response.headers:
                kb = k.encode("latin-1")
                if kb not in HOP_HEADERS:
                    # surrogateescape: WAGI header bytes that are not UTF-8 reach the wire unchanged
                    raw.append((kb, v.encode("utf-8", "surrogateescape")))
            raw.extend((k.encode(), v.encode()) for k, v in extra.items())
            response.raw_headers = raw
            status, code = inv.response.status, None
        self._record(inv, status, code, request_id, queue_s)
        return response

    def _record(self, inv: Invocation, status: int, code: str | None, request_id: str, queue_s: float) -> None:
        m = self.metrics
        m.invocations.labels(inv.function, code or "ok").inc()
        m.duration.labels(inv.function).observe(inv.timings.total)
        m.queue_wait.observe(queue_s)
        m.tiers.labels(inv.tier).inc()
        if inv.tier == "compile":
            m.compile_seconds.inc(inv.timings.load)
        now = time.time()
        if now - self._rss_at > 5:
            self._rss_at = now
            m.rss.set(m._process.memory_info().rss)
        self.logs.add(InvocationRecord(request_id, inv.function, inv.version, now, status, code,
                                       round(inv.timings.total * 1e3, 3), inv.tier, inv.fuel_used,
                                       inv.logs, inv.logs_truncated))

