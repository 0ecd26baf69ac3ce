"""The load generator's WebSocket client: a raw HTTP upgrade, then frames on the bare transport.

websockets' client costs about 30 us a message (a task per connection, a frame object, an
await per send): 2000 bots at 100 ms would take the generator's whole core before the server
is measured. Here, after the handshake, a connection is an asyncio.Protocol: a send is one
`transport.write` of bytes encoded before the clock starts, and what comes back is parsed in
place by FrameParser, which hands a binary frame over as offsets into its buffer (no
per-message object).

Masking: RFC 6455 requires every client frame masked, with a key the server must not be able
to predict (against cache poisoning through proxies that misread WebSocket traffic). A load
generator on loopback has no such proxy, so each connection masks with one fixed key for its
life, drawn from a small pool of random keys: the audio frames are then encoded once per
(chunk, key) rather than per send. The server sees correctly masked frames either way.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import struct
from collections.abc import Callable

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
CLOSE_NORMAL = 1000
MAX_FRAME_BYTES = 1 << 20  # a server frame larger than this is a protocol error here
MAX_HANDSHAKE_BYTES = 16 * 1024  # the server's 101 response, headers included
SEND_BUFFER_LIMIT = 1 << 20  # bytes queued for one connection: past it the bot gives up

BinaryHandler = Callable[[bytes | bytearray, int, int], None]  # buffer, start, stop of a payload
TextHandler = Callable[[bytes], None]


class HandshakeError(Exception):
    """The server did not accept the upgrade as RFC 6455 says it must."""


class ProtocolError(Exception):
    """A server frame this client must not accept (masked, reserved bits, bad opcode)."""


def new_key() -> str:
    """A random Sec-WebSocket-Key: 16 bytes, base64."""
    return base64.b64encode(os.urandom(16)).decode()


def accept_for(key: str) -> str:
    """The Sec-WebSocket-Accept a server must answer key with."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def handshake_request(host: str, path: str, key: str) -> bytes:
    """The HTTP/1.1 upgrade request for path, without extensions (no compression)."""
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def check_handshake(head: bytes, key: str) -> None:
    """Raise HandshakeError unless head (the response up to its blank line) is a 101 with the
    accept for key and no extension (none was offered, so none may be used)."""
    status, *lines = head.decode("latin-1").split("\r\n")
    parts = status.split(" ", 2)
    if len(parts) < 2 or parts[0] != "HTTP/1.1" or parts[1] != "101":
        raise HandshakeError(f"the server answered {status!r}")
    headers: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    if headers.get("upgrade", "").lower() != "websocket":
        raise HandshakeError(f"Upgrade is {headers.get('upgrade')!r}, not websocket")
    if "upgrade" not in headers.get("connection", "").lower():
        raise HandshakeError(f"Connection is {headers.get('connection')!r}, not Upgrade")
    if headers.get("sec-websocket-accept") != accept_for(key):
        raise HandshakeError("Sec-WebSocket-Accept does not match the key sent")
    if "sec-websocket-extensions" in headers:
        raise HandshakeError("the server chose an extension although none was offered")


def mask(payload: bytes, mask_key: bytes) -> bytes:
    """payload XOR the 4-byte mask_key repeated (masking and unmasking are the same)."""
    n = len(payload)
    if n == 0:
        return b""
    key = (mask_key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


def encode_frame(opcode: int, payload: bytes, mask_key: bytes) -> bytes:
    """One final client frame (FIN set, masked with mask_key), ready to write."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + mask_key + mask(payload, mask_key)


def close_payload(code: int, reason: str = "") -> bytes:
    """A close frame's payload: the code, then the reason in UTF-8."""
    return struct.pack("!H", code) + reason.encode()


class FrameParser:
    """Server frames (unmasked) out of a byte stream, in whatever pieces it arrives.

    A binary frame goes to on_binary as (buffer, start, stop), valid only during the call: the
    payload is not copied (a fragmented message arrives as one call per fragment). Text is
    reassembled and handed over whole; ping payloads and close (code, reason) go to their
    handlers. Anything RFC 6455 forbids a server to send raises ProtocolError."""

    def __init__(
        self,
        on_binary: BinaryHandler,
        on_text: TextHandler,
        on_ping: Callable[[bytes], None],
        on_close: Callable[[int | None, bytes], None],
        max_frame_bytes: int = MAX_FRAME_BYTES,
    ) -> None:
        self.on_binary, self.on_text, self.on_ping, self.on_close = (
            on_binary,
            on_text,
            on_ping,
            on_close,
        )
        self.max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()
        self._message: int | None = None  # opcode of a fragmented message in progress
        self._text = bytearray()

    def feed(self, data: bytes) -> None:
        """Parse every complete frame in what has arrived so far; keep the rest."""
        if not self._buffer and self._message is None and len(data) >= 2 and data[0] == 0x82:
            # the common read: exactly one whole binary frame, handed over without a copy
            length, start = data[1], 2
            if length == 126 and len(data) >= 4:
                length, start = (data[2] << 8) | data[3], 4
            if length < 127 and start + length == len(data):
                self.on_binary(data, start, len(data))
                return
        buffer = self._buffer
        buffer += data
        end, pos = len(buffer), 0
        try:
            while end - pos >= 2:
                first, second = buffer[pos], buffer[pos + 1]
                if second & 0x80:
                    raise ProtocolError("a server frame is masked")
                if first & 0x70:
                    raise ProtocolError("reserved bits set, but no extension was negotiated")
                length, start = second & 0x7F, pos + 2
                if length == 126:
                    if end - start < 2:
                        break
                    length = int.from_bytes(buffer[start : start + 2], "big")
                    start += 2
                elif length == 127:
                    if end - start < 8:
                        break
                    length = int.from_bytes(buffer[start : start + 8], "big")
                    start += 8
                if length > self.max_frame_bytes:
                    raise ProtocolError(f"a {length}-byte frame (limit {self.max_frame_bytes})")
                stop = start + length
                if stop > end:
                    break
                self._frame(first & 0x0F, first & 0x80, start, stop)
                pos = stop
        finally:
            if pos:
                del buffer[:pos]

    def _frame(self, opcode: int, fin: int, start: int, stop: int) -> None:
        buffer = self._buffer
        if opcode >= OP_CLOSE:
            if not fin or stop - start > 125:
                raise ProtocolError(f"control frame {opcode:#x} fragmented or over 125 bytes")
            if opcode == OP_PING:
                self.on_ping(bytes(buffer[start:stop]))
            elif opcode == OP_CLOSE:
                if stop - start == 1:
                    raise ProtocolError("a close frame with a 1-byte payload")
                code = int.from_bytes(buffer[start : start + 2], "big") if stop > start else None
                self.on_close(code, bytes(buffer[start + 2 : stop]))
            elif opcode != OP_PONG:
                raise ProtocolError(f"reserved control opcode {opcode:#x}")
            return
        if opcode == OP_CONTINUATION:
            if self._message is None:
                raise ProtocolError("a continuation frame with no message to continue")
            opcode = self._message
        elif self._message is not None:
            raise ProtocolError("a new message began inside a fragmented one")
        elif opcode not in (OP_TEXT, OP_BINARY):
            raise ProtocolError(f"reserved data opcode {opcode:#x}")
        self._message = None if fin else opcode
        if opcode == OP_BINARY:
            self.on_binary(buffer, start, stop)
            return
        self._text += buffer[start:stop]
        if fin:
            text, self._text = bytes(self._text), bytearray()
            self.on_text(text)


class BotClient(asyncio.Protocol):
    """One bot's connection: the upgrade, then frames; pings answered, close handshaken.

    `opened` resolves when the server accepted the upgrade (or raises why not); `closed`
    when the TCP connection is gone, with the close code the server sent (None: none). A
    frame the server must not send drops the connection, with the reason in `error`."""

    def __init__(
        self,
        host: str,
        path: str,
        mask_key: bytes,
        on_binary: BinaryHandler,
        on_text: TextHandler | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        self.host, self.path, self.mask_key = host, path, mask_key
        self.key = new_key()
        self.parser = FrameParser(on_binary, on_text or ignore_text, self._pong, self._closing)
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[int | None] = loop.create_future()
        self.close_code: int | None = None
        self.error: ProtocolError | None = None  # why this client dropped the connection
        self.unsent = 0  # frames written after the connection was dropped (counted, not sent)
        self.transport: asyncio.Transport | None = None
        self.write: Callable[[bytes], None] = self._not_open
        self._head = bytearray()
        self._open = False  # the upgrade is done: what arrives is frames
        self._close_sent = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        transport.set_write_buffer_limits(high=SEND_BUFFER_LIMIT)
        transport.write(handshake_request(self.host, self.path, self.key))

    def data_received(self, data: bytes) -> None:
        if self._open:
            try:
                self.parser.feed(data)
            except ProtocolError as error:
                self.error = error
                self.abort()
            return
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head) > MAX_HANDSHAKE_BYTES:
                self._fail(HandshakeError(f"no end of headers in {len(self._head)} bytes"))
            return
        try:
            check_handshake(bytes(self._head[:end]), self.key)
        except HandshakeError as error:
            self._fail(error)
            return
        self.write = self.transport.write  # type: ignore[union-attr]
        self._open = True
        self.opened.set_result(None)
        rest, self._head = bytes(self._head[end + 4 :]), bytearray()
        if rest:
            self.data_received(rest)

    def pause_writing(self) -> None:
        """SEND_BUFFER_LIMIT queued: the server has stopped reading; the bot gives up (counted
        in the step as a lost connection) rather than queue without bound."""
        self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.write = self._unsent
        if not self.opened.done():
            self.opened.set_exception(exc or HandshakeError("connection closed in the handshake"))
        if not self.closed.done():
            self.closed.set_result(self.close_code)

    def send_text(self, text: str) -> None:
        """A text frame (the hello, a roster), masked with this connection's key."""
        self.write(encode_frame(OP_TEXT, text.encode(), self.mask_key))

    async def close(self, code: int = CLOSE_NORMAL, timeout: float = 5.0) -> int | None:
        """Send a close frame, wait for the server's and for the end of TCP; its close code."""
        if self.transport is not None and not self.transport.is_closing():
            self._send_close(code)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.closed), timeout)
            self.abort()
        return await self.closed

    def abort(self) -> None:
        """Drop the connection without a close frame; later writes are only counted."""
        self.write = self._unsent
        if self.transport is not None:
            self.transport.abort()

    def _unsent(self, data: bytes) -> None:
        self.unsent += 1

    def _send_close(self, code: int) -> None:
        if not self._close_sent:
            self._close_sent = True
            self.write(encode_frame(OP_CLOSE, close_payload(code), self.mask_key))

    def _pong(self, payload: bytes) -> None:
        self.write(encode_frame(OP_PONG, payload, self.mask_key))

    def _closing(self, code: int | None, reason: bytes) -> None:
        self.close_code = code
        self._send_close(CLOSE_NORMAL if code is None else code)
        self.transport.close()  # type: ignore[union-attr]  # the server closes TCP first (RFC 6455 7.1.1); this is a fallback

    def _fail(self, error: Exception) -> None:
        self.opened.set_exception(error)
        self.abort()

    @staticmethod
    def _not_open(data: bytes) -> None:
        raise RuntimeError("the connection is not open")


def ignore_text(payload: bytes) -> None:
    """Text the server sends a bot (events, if any) is not part of what the load measures."""


async def connect(
    host: str,
    port: int,
    path: str,
    mask_key: bytes,
    on_binary: BinaryHandler,
    on_text: TextHandler | None = None,
    timeout: float = 30.0,
) -> BotClient:
    """Open a TCP connection to host:port and upgrade it on path; the client once open."""
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(
        lambda: BotClient(f"{host}:{port}", path, mask_key, on_binary, on_text), host, port
    )
    try:
        await asyncio.wait_for(asyncio.shield(client.opened), timeout)
    except BaseException:
        client.abort()
        raise
    return client
