"""uvicorn's httptools protocol with limits on the request head.

uvicorn's `HttpToolsProtocol` keeps every header a client sends (1,000,000 headers =
15 MB took a worker to 200 MB) and waits for the end of a head forever. This subclass
refuses a head that passes a limit and stops reading from that client:

- `MAX_URL_BYTES`: the request target → 414, code `too_large`;
- `MAX_HEADER_BYTES`: the request target plus every header name and value → 431, `too_large`;
- `MAX_HEADER_COUNT`: header lines → 431, `too_large`;
- `MAX_HEAD_RAW_BYTES`: the raw bytes of the reads after the first that end inside a head
  (httptools joins a header line it has not seen the end of, without a limit) → 431, `too_large`;
- `HEADER_TIMEOUT_S`: the whole head must arrive within this many seconds of the
  connection's start or of the request's first byte → 408, `request_timeout`
  (a connection that sent nothing at all is just closed).

The checks run once per head (at its end) and once per read that ends inside a head, not
per header: a head read in one piece cannot hold more than that read, and a read is at
most 256,000 bytes (uvloop), so the most a worker ever holds beyond the limits is the
headers parsed from one read, for one connection, during one callback, freed at once.
Chunked-body trailers, which uvicorn appended to the
scope's headers after the app had read them and without a limit, are dropped.

A refused client gets a JSON error body in the project's shape (`http/errors.render_error`,
no `request_id`: the request never reached the app), `Connection: close` and a half-close;
what it still sends is read and dropped (up to `LINGER_BYTES`, for at most `LINGER_S`
seconds) so that a client still writing its head sees the answer rather than a reset. If a
response to an earlier pipelined request is still being written, no error is sent: the
connection closes after that response.

Checking per head, not per header, keeps the cost flat in the number of headers (counting
in `on_header` grew with it: bench/design-figures.md: head-limits). uvicorn's `data_received` is restated
here, not called through, so that the hot path has no extra Python frame.
"""

from __future__ import annotations

import fcntl
import logging
import struct
import termios
from asyncio import TimerHandle, Transport
from collections.abc import Iterator
from itertools import chain

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from ..errors import BadRequest, RequestTimeout, TooLarge, WasmhostError
from .errors import render_error

KIB = 1024
MAX_URL_BYTES = 16 * KIB  # AWS ALB / Cloudflare: 16 KiB; nginx and Apache: ~8 KiB request line
MAX_HEADER_BYTES = 64 * KIB  # target + names + values; nginx 32 KiB, node 16 KiB, AWS ALB 64 KiB
MAX_HEADER_COUNT = 1000  # Apache 100, node 2000 (drops the rest), nginx and Go: no count
MAX_HEAD_RAW_BYTES = 2 * MAX_HEADER_BYTES  # backstop, raw bytes of reads that end inside a head
HEADER_TIMEOUT_S = 30.0  # nginx and node 60 s, Apache 20-40 s; as Settings.body_timeout_s by default
LINGER_S = 5.0
LINGER_BYTES = 16 * 1024 * KIB
# A connection whose answer stops moving (the client reads nothing for this long while the
# transport's write buffer is over its high-water mark) is aborted and its buffers freed. The app sets it
# through the lifespan state (Settings.send_timeout_s); this is the value without one.
SEND_TIMEOUT_S = 30.0
SEND_TIMEOUT_KEY = "wasmhost.send_timeout_s"
# ...where "reads nothing" is "takes less than this": a client's own receive buffer takes a
# few KiB of a stalled answer after the deadline has started.
SEND_PROGRESS_BYTES = 16 * KIB

log = logging.getLogger("wasmhost.http")


def _refusal_error(kind: str) -> tuple[int, WasmhostError]:
    """The status and error for a refusal (built when needed, from the current limits)."""
    if kind == "url":
        return 414, TooLarge(f"the request target exceeds the limit of {MAX_URL_BYTES} bytes", limit=MAX_URL_BYTES)
    if kind == "count":
        return 431, TooLarge(f"the request has more than {MAX_HEADER_COUNT} headers", limit=MAX_HEADER_COUNT)
    if kind == "timeout":
        return 408, RequestTimeout(f"the request headers did not arrive within {HEADER_TIMEOUT_S:g} s",
                                   timeout_s=HEADER_TIMEOUT_S)
    if kind.startswith("malformed"):
        return 400, BadRequest("invalid HTTP request" + kind[len("malformed"):])
    return 431, TooLarge(f"the request headers exceed the limit of {MAX_HEADER_BYTES} bytes "
                         "(request target, header names and values)", limit=MAX_HEADER_BYTES)


class _Refused(Exception):
    """Raised from a parser callback to stop httptools in the middle of a read."""


class _Drain:
    """Stands in for the parser once a head was refused: drops what the client still
    sends, and closes the connection once that passes `left` bytes."""

    __slots__ = ("left", "transport")

    def __init__(self, transport: Transport, left: int) -> None:
        self.transport, self.left = transport, left

    def feed_data(self, data: bytes) -> None:
        self.left -= len(data)
        if self.left < 0:
            self.transport.close()


class _Dropped:
    """What uvicorn's `on_header` appends to once a head is complete: it would append the
    trailers of a chunked body to the scope's headers, after the app has read them, and
    without a limit. They are dropped instead."""

    __slots__ = ()

    def append(self, item: object) -> None:
        pass

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(())


_TRAILERS = _Dropped()


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` with the head limits above (module docstring)."""

    # Slots, not the instance dict: uvicorn's 28 attributes nearly fill the 30 keys a CPython
    # 3.11 instance dict shares with its class; past that the dict is a plain one and attribute
    # access slows down for uvicorn's code too (bench/design-figures.md: protocol-slots).
    __slots__ = ("_counted", "_head_bytes", "_head_fresh", "_head_open", "_head_raw", "_head_timer",
                 "_linger_timer", "_read_size", "_refusal", "_send_mark", "_send_timer", "_send_timeout_s")

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self._head_open = False  # between on_message_begin and on_headers_complete
        self._head_fresh = False  # the current head began in the read being parsed
        self._head_raw = 0  # raw bytes of the later reads that ended inside the current head
        self._read_size = 0  # of the read being parsed
        self._counted = 0  # headers of the current head whose bytes are in _head_bytes (slow path only)
        self._head_bytes = 0
        self._head_timer: TimerHandle | None = None
        self._linger_timer: TimerHandle | None = None
        self._refusal: str | None = None  # what a parser callback refused
        self._send_timer: TimerHandle | None = None  # while writing is paused: the send deadline
        self._send_mark = 0  # bytes unsent when the deadline was (re)started
        self._send_timeout_s = float(self.app_state.get(SEND_TIMEOUT_KEY, SEND_TIMEOUT_S))

    # -- connection ---------------------------------------------------------------------------

    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer = self.loop.call_later(HEADER_TIMEOUT_S, self._head_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._head_timer, self._linger_timer, self._send_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._linger_timer = self._send_timer = None
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        """The transport holds more than its high-water mark of unsent bytes: the client is not
        keeping up. If it takes (almost) nothing within the send deadline, the connection goes."""
        self.flow.pause_writing()
        if self._send_timer is None:
            self._send_mark = self._unsent()
            self._send_timer = self.loop.call_later(self._send_timeout_s, self._send_timeout)

    def resume_writing(self) -> None:
        self.flow.resume_writing()
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None

    def _unsent(self) -> int:
        """Bytes written and not yet taken by the client: the transport's buffer, plus the
        kernel's send queue. The kernel part matters: Linux wakes a writer only once a third
        of its (auto-tuned, MBs large) send buffer is free, so a client that reads slowly can
        leave the transport's buffer untouched for seconds while it does read."""
        unsent = self.transport.get_write_buffer_size()
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            try:
                unsent += struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
            except (OSError, ValueError):
                pass
        return unsent

    def _send_timeout(self) -> None:
        self._send_timer = None
        unsent = self._unsent()
        if unsent <= self._send_mark - SEND_PROGRESS_BYTES:  # a slow reader, not a stalled one
            self._send_mark = unsent
            self._send_timer = self.loop.call_later(self._send_timeout_s, self._send_timeout)
            return
        log.info("closed a connection whose client took none of its answer for %g s", self._send_timeout_s)
        self.transport.abort()  # not close(): that would wait, forever, to flush what is pending

    def data_received(self, data: bytes) -> None:
        # uvicorn's data_received, plus what a read that ends inside a head must check.
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None
        self._read_size = len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:
            self._parser_error(exc)
            return
        if self._head_open:
            self._head_unfinished()

    # -- parser callbacks (the hot path) ---------------------------------------------------------

    def on_message_begin(self) -> None:
        HttpToolsProtocol.on_message_begin(self)  # (not super(): it costs ~1000 instructions)
        self._head_open = self._head_fresh = True

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > MAX_URL_BYTES:
            self._refusal = "url"
            raise _Refused

    def on_headers_complete(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        # A head read in one piece of at most MAX_HEADER_BYTES cannot hold more header bytes.
        if len(self.headers) > MAX_HEADER_COUNT or not self._head_fresh or self._read_size > MAX_HEADER_BYTES:
            self._refusal = self._over_limit()
            if self._refusal is not None:
                raise _Refused
        self._head_open = False
        HttpToolsProtocol.on_headers_complete(self)
        cycle = self.cycle
        if cycle is not None and cycle.scope is self.scope:  # (not after a WebSocket upgrade)
            self.headers = _TRAILERS  # type: ignore[assignment]

    # -- the slow paths -------------------------------------------------------------------------

    def _over_limit(self) -> str | None:
        """Which limit the head so far passes, if any."""
        headers = self.headers
        if len(headers) > MAX_HEADER_COUNT:
            return "count"
        if self._head_fresh:  # read in one piece: count from the start
            self._counted = self._head_bytes = 0
        if self._counted < len(headers):
            self._head_bytes += sum(map(len, chain.from_iterable(headers[self._counted:])))
            self._counted = len(headers)
        if len(self.url) + self._head_bytes > MAX_HEADER_BYTES:
            return "bytes"
        return None

    def _head_unfinished(self) -> None:
        """A read ended inside a head: check the head so far, count the read (unless the
        head began in it: some of it may be the request before) and start the head deadline."""
        kind = self._over_limit()
        if self._head_fresh:
            self._head_fresh = False
            self._head_raw = 0
        else:
            self._head_raw += self._read_size
            if self._head_raw > MAX_HEAD_RAW_BYTES:
                kind = "bytes"
        if kind is not None:
            self._refuse(kind)
            return
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(HEADER_TIMEOUT_S, self._head_timeout)

    def _parser_error(self, exc: httptools.HttpParserError) -> None:
        refusal, self._refusal = self._refusal, None
        if refusal is not None:
            self._refuse(refusal)
            return
        # Malformed: in the JSON shape of every other error, not uvicorn's plain text.
        cause = str(exc).strip()
        refusal = "malformed" + (f": {cause[:100]}" if cause and cause.isascii() and cause.isprintable() else "")
        cycle = self.cycle
        if not self._head_open and cycle is not None and not cycle.response_complete:
            # The body of the request being served is broken (a bad chunk): its app, waiting for
            # more body, sees the client leave; the client gets the 400, unless the app's answer
            # has begun, when all that can be done is to end the connection.
            cycle.disconnected = True
            cycle.message_event.set()
            if cycle.response_started:
                self.transport.close()
                return
            self._refuse(refusal, current=True)
            return
        self._refuse(refusal)

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if not self._head_open:  # not one byte of a request since the connection opened
            self.transport.close()
            return
        self._refuse("timeout")

    def _refuse(self, kind: str, current: bool = False) -> None:
        """Answer the refusal `kind` and stop reading requests on this connection (`current`:
        it is about the request being served, whose app no longer answers). Never raises: it
        runs in protocol callbacks and timers."""
        transport = self.transport
        try:
            status, exc = _refusal_error(kind)
            self._head_open = False
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
            self.parser = _Drain(transport, LINGER_BYTES)  # type: ignore[assignment]
            self.headers, self.scope = [], None  # type: ignore[assignment]  # let the refused head go
            log.info("refused a request with %d: %s", status, exc.message)
            if transport.is_closing():
                return
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete and not current:
                cycle.keep_alive = False  # an earlier pipelined request is being answered: close after it
                return
            _, headers, body = render_error(exc, close=True)
            head = [STATUS_LINE[status]]
            for name, value in [*self.server_state.default_headers, *headers]:
                head += [name, b": ", value, b"\r\n"]
            transport.write(b"".join(head) + b"\r\n" + body)
            if not transport.can_write_eof():
                transport.close()
                return
            transport.write_eof()  # the client reads the answer and EOF; what it still sends is drained
            self._linger_timer = self.loop.call_later(LINGER_S, transport.close)
        except Exception:  # pragma: no cover - a bug of ours must not reach the event loop
            log.exception("refusing a request head failed")
            transport.abort()
