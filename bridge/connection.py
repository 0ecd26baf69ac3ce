"""A bot's WebSocket connection whose audio can skip the message queue, both ways.

websockets queues every message for the handler task: per chunk a queue entry, a future
and a task switch. Once a socket is its session's audio source, the session installs an
`audio_sink`, and a whole binary message is handed to it from data_received, in order:
only when no earlier message is still queued for the handler. The rest (text, fragmented
messages, anything before the sink) goes the usual way. Speech out is written as one
unmasked binary frame straight to the transport (send_audio), without websockets' frame
objects; websockets still writes every control frame and the close.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from websockets.asyncio.server import ServerConnection
from websockets.frames import DATA_OPCODES, Frame, Opcode
from websockets.http11 import Request

from bridge.protocol import CloseCode

log = logging.getLogger(__name__)

AudioSink = Callable[[bytes], None]


class BotConnection(ServerConnection):
    """ServerConnection plus an inline path for binary messages (see the module's note)."""

    audio_sink: AudioSink | None = None
    _queued = 0  # whole messages queued for the handler and not yet taken (matters once a
    # sink is set: a control socket never gets one, and its handler never calls took_message)
    _partial = False  # a fragmented message is being queued

    def process_event(self, event: Request | Frame) -> None:  # type: ignore[override]
        if not isinstance(event, Frame) or event.opcode not in DATA_OPCODES:
            super().process_event(event)
        elif (
            self.audio_sink is not None
            and event.opcode is Opcode.BINARY
            and event.fin
            and not self._queued
            and not self._partial
        ):
            self._deliver(self.audio_sink, event.data)
        else:
            self._partial = not event.fin
            self._queued += event.fin
            super().process_event(event)

    def took_message(self) -> None:
        """The handler took a message off the queue: later ones may go inline again."""
        self._queued -= 1

    def send_audio(self, data: bytes) -> None:
        """Write one binary message now, as protocol.send_binary would; only while the
        connection is OPEN (the caller checks: a frame after the close breaks the protocol)."""
        self.transport.write(binary_frame_header(len(data)) + data)

    def _deliver(self, sink: AudioSink, data: bytes) -> None:
        try:
            sink(data)
        except Exception:  # a bug: end this socket, as the handler task would, not the loop
            log.exception("handling an audio message failed; closing the socket")
            self.audio_sink = None
            self.protocol.fail(CloseCode.INTERNAL_ERROR, "internal error")
            self.send_data()


def binary_frame_header(length: int) -> bytes:
    """RFC 6455 header of a final, unmasked (server to client) binary frame of length bytes."""
    if length < 126:
        return bytes((0x82, length))
    if length < 1 << 16:
        return b"\x82\x7e" + length.to_bytes(2, "big")
    return b"\x82\x7f" + length.to_bytes(8, "big")
