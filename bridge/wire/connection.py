"""A bot's WebSocket connection whose audio skips the message queue, both ways, a tick at a time.

websockets queues every message for the handler task: per chunk a queue entry, a future
and a task switch. Once a socket is its session's audio source, the session installs an
`audio_sink`, and a whole binary message is handed to this loop's TickBatch from
data_received, in order: only when no earlier message is still queued for the handler.
The rest (text, fragmented messages, anything before the sink) goes the usual way.

While websockets' parser waits between frames, the whole audio frames at the front of a
read are parsed and unmasked in C (bridge/wire/_frames.c) rather than by its generator-based
parser (0.2 us a frame against 5.5 in a tight loop); from the first other byte on (a control
or text frame, a frame cut by the read, a frame it must refuse) the read is websockets'.
With `coalesce_reads` (a session's source socket) the audio frames of one read are one
chunk: when the loop is busy a bot's messages wait in its socket and are read together,
and the session then works once for them all, so the busier the server, the less it does
a message; nothing waits for it.
Speech out is written as unmasked binary frames straight to the transport (send_audio),
without websockets' frame objects; websockets still writes every control frame and the close.

The batch runs once the loop has read every ready socket: the chunks heard, in arrival
order, and after each WRITE_EVERY of them (and at the end) one write per socket of the
frames they produced. Handling each chunk as its socket is read interleaves the kernel's
receive path, numpy and the VAD, so every system call runs on cold caches: here a loopback
send cost about three times as much inside the per-chunk path as in a tight loop
(docs/design.md, "The hot path"). A frame waits for the handling of at most
WRITE_EVERY - 1 other chunks; a chunk's latency is timed from when it was read, so that
wait is counted.

The sink returns the payload bytes its next frame still needs. When one message cannot
bring them (today's bot's 10 ms of a 20 ms frame), the socket's receive low-water mark
(SO_RCVLOWAT) is raised to that: the kernel wakes the loop for it once the frame can be
whole, not for a message that would only wait for the next. Headers count towards the
mark, so the wake is never later than the message that completes the frame. Anything
smaller that comes alone (a ping, a close, a roster while no audio flows) is read once the
socket has been quiet for QUIET_S: the mark is lowered then, checked every QUIET_S.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
import time
import weakref
from collections.abc import Callable
from typing import ClassVar

from websockets.asyncio.server import ServerConnection
from websockets.frames import DATA_OPCODES, Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import Protocol, Side, State
from websockets.streams import StreamReader

from bridge.wire._frames import AudioLink, TickCore, set_low_water
from bridge.wire.protocol import CloseCode

log = logging.getLogger(__name__)

# (message, monotonic time it was read) -> payload bytes its next frame needs (0 or None: any)
AudioSink = Callable[[bytes, float], int | None]
AudioLost = Callable[[int], None]  # frames of speech the socket closed before writing
AudioWritten = Callable[[], None]  # after a tick's frames of speech went to the transport
_BETWEEN_FRAMES = StreamReader.at_eof.__code__  # where websockets' parser waits for a frame


def between_frames(protocol: Protocol) -> bool:
    """websockets' parser is waiting for a frame's first byte with nothing buffered: the
    only state in which bytes may skip it. A read that ends mid-frame leaves it mid-frame,
    and the bytes after go its way until it has finished that frame."""
    if protocol.reader.buffer or protocol.state is not State.OPEN:
        return False
    parser = protocol.parser
    while (inner := parser.gi_yieldfrom) is not None:
        parser = inner
    return parser.gi_code is _BETWEEN_FRAMES


def _parser_as_expected() -> bool:
    """This websockets parses as the fast path assumes: an open protocol's parser generator
    waits in its reader's at_eof. Else every frame goes through its parser, as before."""
    try:
        return between_frames(Protocol(Side.SERVER, state=State.OPEN))
    except AttributeError:
        return False


SKIP_PARSER = _parser_as_expected()
if not SKIP_PARSER:
    log.warning("this websockets parses frames differently: audio frames go through its parser")


class BotConnection(AudioLink, ServerConnection):
    """ServerConnection plus a batched inline path for binary messages (the module's note).

    An AudioLink (bridge/wire/_frames.c), whose C holds the path and its state:
    - `data_received(data)`: each whole, masked, final binary frame at the front of the
      read, within the size limit, goes to the batch without websockets' parser (while
      the sink is set, nothing is queued for the handler before it, and the parser waits
      between frames: `_parser_waits`); anything else, from its first byte, goes to
      `_to_parser`. With `coalesce_reads`, a read's frames are heard as one chunk (unless
      one has an odd length, which the sink must refuse on its own).
    - `send_audio(data)`: one binary message, written at the end of this tick, before
      anything websockets writes later; only while the connection is OPEN (the caller
      checks). `write_unsent()`: the tick's frames in one write; a closed socket loses
      them (counted by `audio_lost`; `audio_written` after a write).
    - `audio_sink` (AudioSink), `_queued` (whole messages queued for the handler and not
      yet taken: a control socket never gets a sink, and its handler never calls
      took_message), `_partial` (a fragmented message is being queued), `_parser_idle`
      (websockets' parser waits between frames, and no byte went to it since), `wanted`
      (payload bytes the sink said its next frame needs), `heard_at`, `_message_bytes`.
    """

    low_water = 1  # the socket's SO_RCVLOWAT

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._batch = TickBatch.of(self.loop)
        limits = (self.protocol.max_message_size, self.protocol.max_fragment_size)
        self._max_message = min((n for n in limits if n is not None), default=sys.maxsize)
        sock = transport.get_extra_info("socket")
        self._fd: int | None = None if sock is None else sock.fileno()  # for its low-water mark

    def connection_lost(self, exc: Exception | None) -> None:
        self._batch.forget(self)
        super().connection_lost(exc)

    async def keepalive(self) -> None:
        """websockets' keepalive, but its first ping after one to two intervals, at random:
        bots that connected together (a bridge restart, a batch of meetings at the hour)
        would otherwise ping together every interval, hundreds in a burst."""
        assert self.ping_interval is not None  # else websockets starts no keepalive
        await asyncio.sleep(random.uniform(0, self.ping_interval))
        await super().keepalive()

    def _parser_waits(self) -> bool:
        """between_frames(), remembered while no byte has gone to websockets' parser since
        it was true (only bytes move the parser; the state may change by itself); never
        when this websockets parses otherwise than the fast path assumes."""
        if not self._parser_idle or self.protocol.state is not State.OPEN:
            self._parser_idle = SKIP_PARSER and between_frames(self.protocol)
        return self._parser_idle

    def _to_parser(self, data: bytes) -> None:
        self._parser_idle = False
        ServerConnection.data_received(self, data)

    def process_event(self, event: Request | Frame) -> None:  # type: ignore[override]
        if not isinstance(event, Frame) or event.opcode not in DATA_OPCODES:
            super().process_event(event)
        elif event.opcode is Opcode.BINARY and event.fin and self._inline():
            self._batch.hear(self, event.data)
        else:
            self._partial = not event.fin
            self._queued += event.fin
            super().process_event(event)

    def _inline(self) -> bool:
        """A binary message may skip the handler's queue: a sink is set and nothing queued
        for the handler (no whole message, no fragment) is ahead of it."""
        return self.audio_sink is not None and not self._queued and not self._partial

    def wake_after(self, wanted: int) -> None:
        """The sink's next frame needs `wanted` more payload bytes: unless one message
        brings them, the kernel wakes the loop for this socket only once that many bytes
        (headers included) have arrived."""
        self.wanted = wanted
        self._set_low_water(wanted if wanted > self._message_bytes else 1)

    def lower_low_water(self) -> None:
        """Wake for every byte again (the socket went quiet); the sink's next wish raises it."""
        self.wanted = 0
        self._set_low_water(1)

    def _set_low_water(self, mark: int) -> None:
        if mark == self.low_water or self._fd is None or self.transport.is_closing():
            return  # a closing socket is forgotten once lost
        try:
            set_low_water(self._fd, mark)
        except OSError as exc:  # a socket that has none: read every message, as before
            log.info("no receive low-water mark on this socket (%s): every read wakes", exc)
            self._fd = None
            return
        self.low_water = mark
        if mark > 1:
            self._batch.watch(self)
        else:
            self._batch.forget(self)

    def took_message(self) -> None:
        """The handler took a message off the queue: later ones may go inline again."""
        self._queued -= 1

    def send_data(self) -> None:
        self.write_unsent()  # a control frame or the close goes after the speech before it
        super().send_data()

    def sink_failed(self) -> None:
        """The sink raised on a message (in an except block): close this socket (1011),
        not the loop; the rest of this tick's messages from it are not heard."""
        log.exception("handling an audio message failed; closing the socket")
        self.audio_sink = None
        self.protocol.fail(CloseCode.INTERNAL_ERROR, "internal error")
        self.send_data()


QUIET_S = 0.1  # a socket with a raised low-water mark read nothing this long: lowered


class TickBatch(TickCore):
    """One event loop's inline audio of one tick: heard once its reads are done, written
    after every WRITE_EVERY chunks and at the end.

    A TickCore (bridge/wire/_frames.c): `hear(connection, data)` queues an audio message
    for the sinks, run once this tick's reads are done; `await_write(connection)` notes a
    socket with frames to write at the end of the tick; `run()` delivers every message
    heard, in order, writing every socket's frames after each WRITE_EVERY messages and at
    the end (a sink that raises has its socket's sink_failed(); a changed wish its
    wake_after(); a write that raises leaves the rest for the next tick).

    Holds at most what one tick read: a socket's read is bounded by the transport's read
    size, and sockets by max_sessions.
    """

    _of_loop: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, TickBatch]] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self._loop = loop
        self._raised: set[BotConnection] = set()  # sockets whose low-water mark is raised
        self._check: asyncio.TimerHandle | None = None  # for quiet ones among them

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> TickBatch:
        """The loop's batch, made on first use."""
        if (batch := cls._of_loop.get(loop)) is None:
            batch = cls._of_loop[loop] = cls(loop)
        return batch

    def watch(self, connection: BotConnection) -> None:
        """A socket's low-water mark is raised: check it for quiet every QUIET_S."""
        self._raised.add(connection)
        if self._check is None:
            self._check = self._loop.call_later(QUIET_S, self._lower_quiet)

    def forget(self, connection: BotConnection) -> None:
        """A socket's mark is lowered, or it closed."""
        self._raised.discard(connection)

    def _lower_quiet(self) -> None:
        """Lower the mark of each socket that read no audio for QUIET_S: what it holds
        (less than a frame: a ping, a close, the last chunk) is read now."""
        self._check = None
        quiet_since = time.monotonic() - QUIET_S
        for connection in [c for c in self._raised if c.heard_at < quiet_since]:
            connection.lower_low_water()
        if self._raised:
            self._check = self._loop.call_later(QUIET_S, self._lower_quiet)
