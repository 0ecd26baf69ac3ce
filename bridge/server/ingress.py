"""HTTP POSTs on the WebSocket port: webhooks arrive where the bots connect.

websockets' server parses only GET requests (a body or another method is refused before
process_request), so the asyncio protocol of each accepted socket is first a Sniffer: it
reads the request line's first bytes; a `POST ` request is read here, bounded (header
bytes, body bytes, one deadline for the whole request), answered once and closed; anything
else is handed, with the bytes read so far, to the WebSocket connection it would have been
(transport.set_protocol), which then runs as if it had been there from the start. The
parser is sans-I/O (PostParser); only the Sniffer touches the transport.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

log = logging.getLogger(__name__)

POST = b"POST "
REASONS = {
    200: "OK",
    202: "Accepted",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    408: "Request Timeout",
    411: "Length Required",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    501: "Not Implemented",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class PostLimits:
    """Bounds of one POST: header bytes (request line included), body bytes, seconds to read it."""

    max_header_bytes: int = 16384
    max_body_bytes: int = 1 << 20
    timeout_s: float = 10.0
    max_connections: int = 64  # POSTs being read at once; more get 503


@dataclass(frozen=True)
class PostRequest:
    """A whole POST: its target (path and query), headers (names lower-cased) and raw body."""

    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


@dataclass(frozen=True)
class PostResponse:
    """What to answer: a status and a short text body."""

    status: int
    text: str = ""

    def encode(self) -> bytes:
        body = (self.text + "\n").encode() if self.text else b""
        head = (
            f"HTTP/1.1 {self.status} {REASONS.get(self.status, 'Status')}\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        )
        return head.encode() + body


class HttpRefusal(Exception):
    """The request cannot be read; status is what to answer."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass
class PostParser:
    """Reads one HTTP/1.1 POST from bytes as they come (Content-Length bodies only).

    feed() returns the request once whole, else None; it raises HttpRefusal for what
    breaks HTTP or the limits. `continue_wanted` turns true once the headers asked for
    `Expect: 100-continue` and passed the checks.
    """

    limits: PostLimits
    _buffer: bytearray = field(default_factory=bytearray)
    _head: tuple[str, dict[str, str], int] | None = None  # target, headers, body length
    continue_wanted: bool = False

    def feed(self, data: bytes) -> PostRequest | None:
        self._buffer += data
        if self._head is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > self.limits.max_header_bytes:
                    raise HttpRefusal(431, "request headers too large")
                return None
            if end > self.limits.max_header_bytes:
                raise HttpRefusal(431, "request headers too large")
            self._head = self._parse_head(bytes(self._buffer[:end]))
            del self._buffer[: end + 4]
        target, headers, length = self._head
        if len(self._buffer) > length:
            raise HttpRefusal(400, "more bytes than Content-Length (one request per connection)")
        if len(self._buffer) < length:
            return None
        return PostRequest(target, headers, bytes(self._buffer))

    def _parse_head(self, head: bytes) -> tuple[str, dict[str, str], int]:
        try:
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ")
        except ValueError:
            raise HttpRefusal(400, "malformed request line") from None
        if method != "POST" or not version.startswith("HTTP/1.") or not target.startswith("/"):
            raise HttpRefusal(400, "malformed request line")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip():
                raise HttpRefusal(400, "malformed header line")
            key = name.lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        if "transfer-encoding" in headers:
            raise HttpRefusal(501, "chunked bodies are not supported: send a Content-Length")
        length_text = headers.get("content-length")
        if length_text is None:
            raise HttpRefusal(411, "a POST needs a Content-Length")
        if not length_text.isdigit():
            raise HttpRefusal(400, "bad Content-Length")
        length = int(length_text)
        if length > self.limits.max_body_bytes:
            raise HttpRefusal(413, f"body over {self.limits.max_body_bytes} bytes")
        self.continue_wanted = headers.get("expect", "").lower() == "100-continue"
        return target, headers, length


class QuietLog:
    """Logs a kind of refusal once per window; the rest of the window is only counted."""

    def __init__(self, logger: logging.Logger, window_s: float) -> None:
        self._log = logger
        self._window_s = window_s
        self._last: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def warning(self, kind: str, message: str, *args: object) -> None:
        now = time.monotonic()
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if now - self._last.get(kind, -self._window_s) >= self._window_s:
            self._last[kind] = now
            self._log.warning(
                message + " (more within %.0f s are counted, not logged)", *args, self._window_s
            )


PostHandler = Callable[[PostRequest, str], PostResponse]  # (request, peer address) -> response


class Ingress:
    """The POST side of the port: its handler, its limits, the POSTs being read now."""

    def __init__(self, handle: PostHandler, limits: PostLimits) -> None:
        self.handle = handle
        self.limits = limits
        self.open: set[Sniffer] = set()
        self.refused = 0  # POSTs refused before reaching the handler (malformed, too big, slow)
        self.quiet = QuietLog(log, 60.0)

    def sniffing(
        self, create_connection: Callable[..., Any], gate: Gate | None = None
    ) -> Callable[..., Sniffer]:
        """A create_connection for websockets' serve(): each socket starts as a Sniffer that
        becomes create_connection(...) unless it sends a POST. With a gate, a socket not yet
        told apart holds a slot of it, as a handshake in progress does."""

        def make(*args: Any, **kwargs: Any) -> Sniffer:
            return Sniffer(self, lambda: create_connection(*args, **kwargs), gate)

        return make

    def close(self) -> None:
        """Drop the POSTs still being read (server shutdown)."""
        for sniffer in list(self.open):
            sniffer.abort()


Gate = Callable[[object, str | None], str | None]  # (socket, peer) admits; (socket, None) frees


class Sniffer(asyncio.Protocol):
    """A socket's protocol until its first bytes say POST (read here) or not (handed over)."""

    def __init__(
        self,
        ingress: Ingress,
        make_connection: Callable[[], asyncio.Protocol],
        gate: Gate | None = None,
    ) -> None:
        self._ingress = ingress
        self._make_connection = make_connection
        self._gate = gate
        self._transport: asyncio.Transport | None = None
        self._first = b""
        self._parser: PostParser | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._peer = "?"
        self._answered = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        self._peer = str(peer[0]) if peer else "?"
        if self._gate is not None and self._gate(self, self._peer) is not None:
            self._transport.abort()  # over a cap: dropped before any byte is read
            return
        # a socket that says nothing is closed like a stalled POST (websockets' own
        # open_timeout starts only once it is handed over)
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(self._ingress.limits.timeout_s, self._too_slow)

    def data_received(self, data: bytes) -> None:
        if self._answered:
            return  # after the answer, the socket is closing
        if self._parser is not None:
            self._read_post(data)
            return
        self._first += data
        if len(self._first) < len(POST) and POST.startswith(self._first):
            return  # too few bytes to tell
        if not self._first.startswith(POST):
            self._hand_over()
            return
        if len(self._ingress.open) >= self._ingress.limits.max_connections:
            self._refuse(HttpRefusal(503, "too many webhook requests at once"))
            return
        self._ingress.open.add(self)
        self._parser = PostParser(self._ingress.limits)
        first, self._first = self._first, b""
        self._read_post(first)

    def eof_received(self) -> bool:
        if self._parser is not None:
            self._refuse(HttpRefusal(400, "the request ended early"))
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()
        self._finish()

    def _hand_over(self) -> None:
        """Become the WebSocket connection: it gets the transport and the bytes read so far."""
        assert self._transport is not None
        self._finish()  # no deadline of ours: websockets' open_timeout applies from here
        connection = self._make_connection()
        self._transport.set_protocol(connection)
        connection.connection_made(self._transport)
        connection.data_received(self._first)
        self._first = b""

    def _read_post(self, data: bytes) -> None:
        assert self._parser is not None and self._transport is not None
        try:
            request = self._parser.feed(data)
        except HttpRefusal as exc:
            self._refuse(exc)
            return
        if request is None:
            if self._parser.continue_wanted:
                self._parser.continue_wanted = False
                self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            return
        self._parser = None
        try:
            response = self._ingress.handle(request, self._peer)
        except Exception:  # a bug in a handler: answer 500, keep the server
            log.exception("handling POST %s failed", request.path)
            response = PostResponse(500, "internal error")
        self._answer(response)

    def _too_slow(self) -> None:
        self._deadline = None
        if self._parser is None:  # nothing said, or too little to tell
            self._ingress.refused += 1
            self.abort()
            return
        self._refuse(HttpRefusal(408, f"the request took over {self._ingress.limits.timeout_s} s"))

    def _refuse(self, exc: HttpRefusal) -> None:
        self._ingress.refused += 1
        self._ingress.quiet.warning(
            str(exc.status), "refused a POST from %s: %d %s", self._peer, exc.status, exc.detail
        )
        self._parser = None
        self._answer(PostResponse(exc.status, exc.detail))

    def _answer(self, response: PostResponse) -> None:
        self._answered = True
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(response.encode())
            self._transport.close()
        self._finish()

    def _finish(self) -> None:
        if self._gate is not None:
            self._gate(self, None)  # its slot is free (a WebSocket takes its own)
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._ingress.open.discard(self)
