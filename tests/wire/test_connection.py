"""BotConnection: binary messages skip the queue only when nothing queued is ahead of them."""

import asyncio
import time
from socket import SO_RCVLOWAT, SOL_SOCKET

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import apply_mask
from websockets.protocol import State
from websockets.server import ServerProtocol

from bridge.wire._frames import WRITE_EVERY, AudioLink
from bridge.wire.connection import (
    QUIET_S,
    SKIP_PARSER,
    BotConnection,
    TickBatch,
    between_frames,
)
from tests.helpers import eventually


class Recorder:
    """A handler that takes messages slowly (so a backlog queues up) and, after the first
    binary one, installs a sink that records what arrives inline."""

    def __init__(self, sink_raises: bool = False) -> None:
        self.heard: list[tuple[str, bytes | str]] = []
        self.sink_raises = sink_raises

    def sink(self, data: bytes, read_at: float) -> None:
        if self.sink_raises:
            raise RuntimeError("a bug in the pipeline")
        self.heard.append(("inline", data))

    async def handle(self, connection: BotConnection) -> None:
        try:
            async for message in connection:
                connection.took_message()
                self.heard.append(("queued", message))
                await asyncio.sleep(0.01)  # a slow hello: later messages queue meanwhile
                if isinstance(message, bytes) and connection.audio_sink is None:
                    connection.audio_sink = self.sink
        except ConnectionClosed:
            pass


async def start(recorder: Recorder, **options):
    """A server of BotConnections, without compression as bridge.server.server runs it."""
    return await serve(
        recorder.handle,
        "127.0.0.1",
        0,
        create_connection=BotConnection,
        compression=None,
        **options,
    )


async def test_messages_keep_their_order_across_the_queue_and_the_inline_path():
    recorder = Recorder()
    async with await start(recorder) as server:
        port = server.sockets[0].getsockname()[1]
        sent: list[bytes | str] = ["hello", b"\x01\x00", b"\x02\x00", "speakers", b"\x03\x00"]
        async with connect(f"ws://127.0.0.1:{port}") as ws:
            for message in sent:  # one burst: the handler is still on the hello
                await ws.send(message)
            await asyncio.sleep(0.2)
            later = [b"\x04\x00", b"\x05\x00", "speakers again", b"\x06\x00"]
            for message in later:
                await ws.send(message)
                await asyncio.sleep(0.05)  # paced, like a bot: the queue is empty each time
            # a text and audio in one TCP segment, the sink in place: the audio must wait
            burst = ["speakers in a burst", b"\x07\x00"]
            ws.protocol.send_text(burst[0].encode())
            ws.protocol.send_binary(burst[1])
            ws.transport.write(b"".join(ws.protocol.data_to_send()))
            await asyncio.sleep(0.1)
    assert [m for _, m in recorder.heard] == sent + later + burst
    how = dict((m, path) for path, m in recorder.heard if isinstance(m, bytes))
    assert [how[m] for m in (b"\x02\x00", b"\x03\x00")] == ["queued", "queued"]  # a backlog
    assert [how[m] for m in (b"\x04\x00", b"\x05\x00", b"\x06\x00")] == ["inline"] * 3
    assert how[b"\x07\x00"] == "queued"


async def test_fragmented_audio_goes_through_the_queue_whole():
    recorder = Recorder()
    async with await start(recorder) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as ws:
            await ws.send(b"\x01\x00")
            await asyncio.sleep(0.1)  # the sink is in place
            await ws.send([b"\x02\x00", b"\x03\x00"])  # one message in two frames
            await asyncio.sleep(0.1)
            await ws.send(b"\x04\x00")
            await asyncio.sleep(0.1)
    assert recorder.heard == [
        ("queued", b"\x01\x00"),
        ("queued", b"\x02\x00\x03\x00"),
        ("inline", b"\x04\x00"),
    ]


async def test_a_raising_sink_closes_only_its_socket_with_1011(caplog):
    recorder = Recorder(sink_raises=True)
    async with await start(recorder) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as ws:
            await ws.send(b"\x01\x00")
            await asyncio.sleep(0.1)
            await ws.send(b"\x02\x00")
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 2)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
        async with connect(f"ws://127.0.0.1:{port}") as other:  # the server still serves
            await other.send("hello")
            await asyncio.sleep(0.1)
    assert caplog.text.count("handling an audio message failed") == 1


class Transport:
    """What write_unsent and send_speech ask of uvloop's transport, recording the writes."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closing = False
        self.buffered = 0

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def write(self, data: bytes) -> None:
        self.written.append(data)


class Link(AudioLink):
    """An AudioLink without a loop: its tick's frames are written when the test says."""

    def __init__(self) -> None:
        self.transport = Transport()
        self.protocol = ServerProtocol()
        self.protocol.state = State.OPEN


def test_speech_is_queued_only_while_the_socket_is_open_and_its_backlog_under_the_bound():
    link = Link()
    assert link.send_speech(b"\x01\x00", 100) == 0 and link.unsent_frames == 1
    link.transport.buffered = 101  # the bot is not reading: over the bound
    assert link.send_speech(b"\x02\x00", 100) == 2 and link.unsent_frames == 1
    link.transport.buffered = 100
    assert link.send_speech(b"\x03\x00", 100) == 0 and link.unsent_frames == 2
    link.protocol.state = State.CLOSING  # websockets is closing it: nothing more goes
    assert link.send_speech(b"\x04\x00", 100) == 1
    link.protocol.state = State.OPEN
    link.transport.closing = True
    assert link.send_speech(b"\x05\x00", 100) == 1 and link.unsent_frames == 2
    link.transport.closing = False
    link.write_unsent()
    assert link.transport.written == [b"\x82\x02\x01\x00\x82\x02\x03\x00"]


@pytest.mark.parametrize("length", [0, 1, 125, 126, 960, 65535, 65536, 70000])
def test_audio_frames_are_the_bytes_websockets_would_write(length):
    protocol = ServerProtocol()
    protocol.state = State.OPEN
    data = bytes(range(256)) * (length // 256) + bytes(length % 256)
    protocol.send_binary(data)
    protocol.send_binary(data[::-1])
    link = Link()
    link.send_audio(data)
    link.send_audio(data[::-1])
    assert link.unsent_frames == 2
    link.write_unsent()  # one write for the tick's two frames
    assert link.transport.written == [b"".join(protocol.data_to_send())]
    assert link.unsent_frames == 0


async def test_audio_sent_inline_reaches_the_client_whole_and_in_order():
    async def handler(connection: BotConnection) -> None:
        for size in (10, 960, 70000):
            connection.send_audio(bytes([size % 251]) * size)
        await connection.send("done")  # websockets' own send, after ours: order is kept
        await connection.wait_closed()

    async with serve(handler, "127.0.0.1", 0, create_connection=BotConnection) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", max_size=None) as ws:
            got = [await ws.recv() for _ in range(4)]
    assert got == [bytes([s % 251]) * s for s in (10, 960, 70000)] + ["done"]


class Socket:
    """A stand-in for a BotConnection as the batch sees it: records what the batch asks."""

    def __init__(self, name: str, log: list, batch: TickBatch) -> None:
        self.name, self.log, self.batch = name, log, batch
        self.fail_writes = 0
        self.audio_sink = self.hear
        self.wanted = 0  # the sink says nothing of its next frame (returns None)

    def hear(self, data: bytes, read_at: float) -> None:
        self.log.append(("heard", self.name, data, read_at))
        self.batch.await_write(self)  # a frame of speech for this tick

    def write_unsent(self) -> None:
        if self.fail_writes:
            self.fail_writes -= 1
            raise OSError("a broken transport")
        self.log.append(("wrote", self.name))


async def test_a_tick_hears_every_socket_in_order_then_writes_each_once():
    batch = TickBatch(asyncio.get_running_loop())
    log: list = []
    a, b = Socket("a", log, batch), Socket("b", log, batch)
    before = time.monotonic()
    for socket, data in ((a, b"1"), (b, b"2"), (a, b"3")):  # three messages read in one tick
        batch.hear(socket, data)
    assert log == []  # nothing until the loop has read everything
    await asyncio.sleep(0)
    heard = [entry[:3] for entry in log if entry[0] == "heard"]
    assert heard == [("heard", "a", b"1"), ("heard", "b", b"2"), ("heard", "a", b"3")]
    read_at = [entry[3] for entry in log if entry[0] == "heard"]
    assert before <= read_at[0] <= read_at[1] <= read_at[2] <= time.monotonic()
    assert [entry[0] for entry in log] == ["heard"] * 3 + ["wrote"] * 3  # hear all, then write
    log.clear()
    for i in range(WRITE_EVERY + 2):  # a busy tick: writes after WRITE_EVERY, and at the end
        batch.hear(a, bytes([i]))
    await asyncio.sleep(0)
    assert [entry[0] for entry in log] == (
        ["heard"] * WRITE_EVERY + ["wrote"] * WRITE_EVERY + ["heard"] * 2 + ["wrote"] * 2
    )
    log.clear()
    batch.hear(b, b"4")  # the next tick runs again
    await asyncio.sleep(0)
    assert [entry[:2] for entry in log] == [("heard", "b"), ("wrote", "b")]


async def test_a_failing_write_leaves_the_other_sockets_for_the_next_tick():
    loop = asyncio.get_running_loop()
    errors: list = []
    loop.set_exception_handler(lambda _, context: errors.append(context["exception"]))
    try:
        batch = TickBatch(loop)
        log: list = []
        a, b = Socket("a", log, batch), Socket("b", log, batch)
        b.fail_writes = 1
        batch.hear(a, b"1")
        batch.hear(b, b"2")
        for _ in range(3):
            await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert [type(e) for e in errors] == [OSError]
    assert ("wrote", "a") in log  # written the tick after b's write raised


async def test_speech_written_this_tick_goes_before_the_close():
    async def handler(connection: BotConnection) -> None:
        connection.send_audio(b"\x01\x00" * 480)
        await connection.close(1000, "bye")

    async with serve(handler, "127.0.0.1", 0, create_connection=BotConnection) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as ws:
            assert await ws.recv() == b"\x01\x00" * 480
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000


async def test_speech_left_unwritten_by_a_closed_socket_is_counted_lost():
    lost: list[int] = []

    async def handler(connection: BotConnection) -> None:
        connection.audio_lost = lost.append
        connection.send_audio(b"\x01\x00" * 480)
        connection.send_audio(b"\x02\x00" * 480)
        connection.transport.abort()  # the socket is gone before the tick's writes
        await connection.wait_closed()

    async with serve(handler, "127.0.0.1", 0, create_connection=BotConnection) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as ws:
            with pytest.raises(ConnectionClosed):
                await ws.recv()
    assert lost == [2]


class ParserCalls:
    """Counts the reads that went through websockets' own parser (its data_received)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reads: list[bytes] = []
        parse = ServerConnection.data_received

        def counted(connection: ServerConnection, data: bytes) -> None:
            self.reads.append(data)
            parse(connection, data)

        monkeypatch.setattr(ServerConnection, "data_received", counted)


def masked_frames(ws, *messages: bytes | str) -> bytes:
    """The bytes the client would write for these messages, to write them in one go or cut."""
    for message in messages:
        if isinstance(message, bytes):
            ws.protocol.send_binary(message)
        else:
            ws.protocol.send_text(message.encode())
    return b"".join(ws.protocol.data_to_send())


async def sink_in_place(ws, recorder: Recorder) -> None:
    await ws.send(b"\x00\x00")  # the first binary message installs the sink
    await asyncio.sleep(0.1)
    recorder.heard.clear()


def test_the_installed_websockets_parses_as_the_fast_path_assumes():
    assert SKIP_PARSER  # else audio frames still work, through its parser, slower


async def test_audio_frames_between_frames_skip_websockets_parser(monkeypatch):
    recorder, parser = Recorder(), ParserCalls(monkeypatch)
    sizes = [2, 960, 200, 70000]  # lengths in 7 bits, 16 bits and 64 bits
    async with await start(recorder) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as ws:
            await sink_in_place(ws, recorder)
            parsed_before = len(parser.reads)
            for size in sizes:
                await ws.send(bytes([size % 251]) * size)
                await asyncio.sleep(0.02)
            ws.transport.write(masked_frames(ws, b"\x01\x00", b"\x02\x00"))  # two in one read
            await asyncio.sleep(0.1)
            assert len(parser.reads) == parsed_before
    expected = [bytes([s % 251]) * s for s in sizes] + [b"\x01\x00", b"\x02\x00"]
    assert recorder.heard == [("inline", m) for m in expected]


async def test_with_coalesce_reads_a_reads_audio_frames_are_heard_as_one_chunk():
    recorder = Recorder()
    async with await start(recorder) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as ws:
            await sink_in_place(ws, recorder)
            (connection,) = server.connections
            connection.coalesce_reads = True
            ws.transport.write(masked_frames(ws, b"\x01\x00", b"\x02\x00\x03\x00"))
            await asyncio.sleep(0.05)
            ws.transport.write(masked_frames(ws, b"\x04\x00", b"\x05", b"\x06\x00"))  # odd
            await asyncio.sleep(0.05)
            ws.transport.write(masked_frames(ws, b"\x07\x00", "speakers", b"\x08\x00"))
            await asyncio.sleep(0.1)
    assert recorder.heard == [
        ("inline", b"\x01\x00\x02\x00\x03\x00"),  # one read, one chunk
        ("inline", b"\x04\x00"),  # a read with an odd frame: each as it came, for refusal
        ("inline", b"\x05"),
        ("inline", b"\x06\x00"),
        ("inline", b"\x07\x00"),  # the text frame ends what the read's fast path takes
        ("queued", "speakers"),
        ("queued", b"\x08\x00"),
    ]


async def test_from_another_frame_on_a_read_goes_to_websockets_in_order(monkeypatch):
    recorder, parser = Recorder(), ParserCalls(monkeypatch)
    async with await start(recorder) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as ws:
            await sink_in_place(ws, recorder)
            first, rest = masked_frames(ws, b"\x01\x00"), masked_frames(ws, "speakers", b"\x02\x00")
            ws.transport.write(first + rest)
            await asyncio.sleep(0.1)
            assert parser.reads[-1] == rest  # exactly what follows the audio frame taken
    assert recorder.heard == [
        ("inline", b"\x01\x00"),
        ("queued", "speakers"),
        ("queued", b"\x02\x00"),
    ]


async def test_a_frame_cut_by_a_read_is_finished_by_websockets_then_frames_skip_it_again(
    monkeypatch,
):
    recorder, parser = Recorder(), ParserCalls(monkeypatch)
    async with await start(recorder) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as ws:
            await sink_in_place(ws, recorder)
            (connection,) = server.connections
            cut = masked_frames(ws, b"\x01" * 960)
            second = masked_frames(ws, b"\x02" * 960)
            ws.transport.write(cut[:8])  # header, length and mask: websockets holds no byte
            await asyncio.sleep(0.05)
            assert not connection.protocol.reader.buffer
            assert not between_frames(connection.protocol)  # yet it is inside a frame
            ws.transport.write(cut[8:] + second)
            await asyncio.sleep(0.05)
            assert parser.reads[-2:] == [cut[:8], cut[8:] + second]
            assert between_frames(connection.protocol)
            parsed = len(parser.reads)
            await ws.send(b"\x03" * 960)
            await asyncio.sleep(0.05)
            assert len(parser.reads) == parsed  # between frames again
    assert recorder.heard == [("inline", bytes([k]) * 960) for k in (1, 2, 3)]


async def test_oversized_and_unmasked_frames_are_refused_as_websockets_refuses_them():
    recorder = Recorder()
    async with await start(recorder, max_size=1000) as server:
        port = server.sockets[0].getsockname()[1]
        codes = []
        for bad in (
            lambda ws: masked_frames(ws, bytes(1001)),
            # unmasked, then a good frame: read as masked, it would run into the good one
            lambda ws: bytes((0x82, 10)) + bytes(10) + masked_frames(ws, b"\x01\x00"),
        ):
            async with connect(f"ws://127.0.0.1:{port}") as ws:
                await sink_in_place(ws, recorder)
                ws.transport.write(bad(ws))
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 2)
                codes.append(closed.value.rcvd.code if closed.value.rcvd else None)
    assert codes == [1009, 1002]  # too big; a client frame must be masked
    assert recorder.heard == []


# Differential: the fast path (BotConnection, its sink in place) against websockets' own
# parser (a plain ServerConnection) on RFC 6455 edge cases. Same messages, same close code.

MASK = b"\x37\xfa\x21\x3d"
DIFF_MAX_SIZE = 1000


def frame(
    opcode: int,
    payload: bytes,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    length_bytes: int | None = None,  # 0, 2 or 8: force a (non-minimal) length encoding
    mask: bytes = MASK,
) -> bytes:
    """One client frame, built by hand so that it can break any rule."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    form = length_bytes if length_bytes is not None else (0 if n < 126 else 2 if n < 65536 else 8)
    mask_bit = 0x80 if masked else 0
    if form == 0:
        header = bytes((first, mask_bit | n))
    elif form == 2:
        header = bytes((first, mask_bit | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((first, mask_bit | 127)) + n.to_bytes(8, "big")
    if not masked:
        return header + payload
    return header + mask + apply_mask(payload, mask)


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return code.to_bytes(2, "big") + reason


AUDIO = bytes(range(200))
EDGE_CASES: dict[str, bytes] = {
    "binary": frame(2, AUDIO),
    "empty binary": frame(2, b""),
    "two binaries": frame(2, b"\x01\x00") + frame(2, b"\x02\x00"),
    "binary then text": frame(2, b"\x01\x00") + frame(1, b"speakers"),
    "text then binary": frame(1, b"speakers") + frame(2, b"\x01\x00"),
    "16-bit length": frame(2, bytes(300)),
    "at the size limit": frame(2, bytes(DIFF_MAX_SIZE)),
    "over the size limit": frame(2, bytes(DIFF_MAX_SIZE + 1)),
    "64-bit length over the limit": frame(2, bytes(10), length_bytes=8)[:2]
    + (1 << 62).to_bytes(8, "big")
    + MASK,
    "non-minimal 16-bit length": frame(2, bytes(10), length_bytes=2),
    "non-minimal 64-bit length": frame(2, bytes(10), length_bytes=8),
    "rsv1": frame(2, AUDIO, rsv=4),
    "rsv2": frame(2, AUDIO, rsv=2),
    "rsv3": frame(2, AUDIO, rsv=1),
    "reserved data opcode": frame(3, AUDIO),
    "reserved control opcode": frame(0xB, b""),
    "unmasked binary": frame(2, AUDIO, masked=False),
    "fragmented binary": frame(2, b"\x01\x00", fin=False) + frame(0, b"\x02\x00"),
    "fragmented with a ping inside": frame(2, b"\x01\x00", fin=False)
    + frame(9, b"hi")
    + frame(0, b"\x02\x00"),
    "continuation first": frame(0, b"\x01\x00"),
    "new message inside a fragmented one": frame(2, b"\x01\x00", fin=False) + frame(2, b"\x02\x00"),
    "ping": frame(9, b"are you there"),
    "pong": frame(10, b"unsolicited"),
    "ping over 125 bytes": frame(9, bytes(126)),
    "fragmented ping": frame(9, b"hi", fin=False),
    "close 1000": frame(8, close_payload(1000, b"bye")),
    "close without a code": frame(8, b""),
    "close with one byte": frame(8, b"\x03"),
    "close 1005 (reserved)": frame(8, close_payload(1005)),
    "close 999": frame(8, close_payload(999)),
    "close 5000": frame(8, close_payload(5000)),
    "close 4000": frame(8, close_payload(4000)),
    "close reason not UTF-8": frame(8, close_payload(1000, b"\xff\xfe")),
    "text not UTF-8": frame(1, b"\xc3\x28"),
    "fragmented text split in a character": frame(1, "é".encode()[:1], fin=False)
    + frame(0, "é".encode()[1:]),
    "binary after a close": frame(8, close_payload(1000)) + frame(2, b"\x01\x00"),
}


class ByClient:
    """Messages each server connection heard, by the client's port: the fast one's (a
    BotConnection whose first binary message installs the sink) or websockets' own."""

    def __init__(self) -> None:
        self.heard: dict[int, list[bytes | str]] = {}
        self.done: set[int] = set()  # ports whose handler has heard everything

    async def handle(self, connection: ServerConnection) -> None:
        port = connection.remote_address[1]  # the OS may give it to a later client again:
        self.done.discard(port)  # what an earlier connection from it heard is forgotten
        heard = self.heard[port] = []
        fast = isinstance(connection, BotConnection)
        try:
            async for message in connection:
                if fast:
                    connection.took_message()
                heard.append(message)
                if fast and isinstance(message, bytes) and connection.audio_sink is None:
                    connection.audio_sink = lambda data, _: heard.append(data)
        except ConnectionClosed:
            pass
        finally:
            self.done.add(port)


async def outcome(port: int, reads: list[bytes], server: ByClient) -> tuple[list, int | str]:
    """Send a priming audio frame (the sink goes in place), then the reads one at a time;
    returns the messages heard after the priming one and the close code the client got."""
    async with connect(f"ws://127.0.0.1:{port}", compression=None) as ws:
        await ws.send(b"\x00\x00")
        await asyncio.sleep(0.1)
        for i, data in enumerate(reads):
            if i:
                await asyncio.sleep(0.02)  # its own read
                if ws.protocol.close_rcvd is not None:
                    break  # refused already: the rest would go to a closed socket
            ws.transport.write(data)
        try:
            await asyncio.wait_for(ws.wait_closed(), 0.4)
            how: int | str = ws.protocol.close_rcvd.code if ws.protocol.close_rcvd else "dropped"
        except TimeoutError:
            how = "open"  # our close goes after what we wrote: the handler hears it all first
        port = ws.transport.get_extra_info("sockname")[1]
    await eventually(lambda: port in server.done)
    heard = server.heard.get(port, [])
    assert heard[:1] == [b"\x00\x00"]
    return heard[1:], how


async def compare(cases: dict[str, list[bytes]]) -> dict[str, tuple[tuple, tuple]]:
    """Each case's (fast outcome, websockets' outcome)."""
    fast, reference = ByClient(), ByClient()
    options = {"compression": None, "max_size": DIFF_MAX_SIZE}
    async with (
        serve(fast.handle, "127.0.0.1", 0, create_connection=BotConnection, **options) as one,
        serve(reference.handle, "127.0.0.1", 0, **options) as other,
    ):
        ports = [server.sockets[0].getsockname()[1] for server in (one, other)]
        limit = asyncio.Semaphore(16)

        async def run(reads: list[bytes]) -> tuple[tuple, tuple]:
            async with limit:
                return (
                    await outcome(ports[0], reads, fast),
                    await outcome(ports[1], reads, reference),
                )

        results = await asyncio.gather(*(run(reads) for reads in cases.values()))
    return dict(zip(cases, results, strict=True))


async def test_the_fast_path_answers_rfc_6455_edge_cases_as_websockets_does():
    results = await compare({name: [data] for name, data in EDGE_CASES.items()})
    differ = {name: pair for name, pair in results.items() if pair[0] != pair[1]}
    assert differ == {}
    # and the cases do reach both outcomes: messages heard, and each kind of close
    codes = {how for (_, how), _ in results.values()}
    assert {"open", 1000, 1002, 1007, 1009} <= codes


CUT_SEQUENCE = (
    frame(2, bytes(range(20)))
    + frame(2, bytes(300))
    + frame(1, b"speakers")
    + frame(2, b"\x05\x00")
)


async def test_frames_cut_at_every_byte_are_heard_as_websockets_hears_them():
    cuts = {
        f"cut at {k}": [CUT_SEQUENCE[:k], CUT_SEQUENCE[k:]] for k in range(1, len(CUT_SEQUENCE))
    }
    results = await compare({"whole": [CUT_SEQUENCE], **cuts})
    (whole, _) = results["whole"]
    assert whole == ([bytes(range(20)), bytes(300), "speakers", b"\x05\x00"], "open")
    differ = {name: pair for name, pair in results.items() if pair != (whole, whole)}
    assert {name: (sizes(fast), sizes(ours)) for name, (fast, ours) in differ.items()} == {}


def sizes(result: tuple[list, int | str]) -> tuple[list, int | str]:
    """An outcome, its messages by length: short enough to read in a failure."""
    return [len(m) for m in result[0]], result[1]


async def test_bad_frames_cut_at_every_byte_are_refused_as_websockets_refuses_them():
    bad = frame(2, b"\x01\x00") + frame(2, AUDIO, rsv=4) + frame(2, b"\x02\x00")
    cuts = {f"cut at {k}": [bad[:k], bad[k:]] for k in range(1, len(bad), 7)}
    results = await compare(cuts)
    assert {name: pair for name, pair in results.items() if pair[0] != pair[1]} == {}
    assert all(pair[0] == ([b"\x01\x00"], 1002) for pair in results.values())


FRAME_BYTES = 640  # a 20 ms frame at 16 kHz
CHUNK_BYTES = 320  # today's bot's 10 ms message


class FrameSink:
    """A handler whose sink frames like a session: it says how many bytes complete the next
    FRAME_BYTES frame, and records each chunk heard with when it was read."""

    def __init__(self) -> None:
        self.heard: list[tuple[int, float]] = []
        self.total = 0
        self.connection: BotConnection | None = None

    def sink(self, data: bytes, read_at: float) -> int:
        self.heard.append((len(data), read_at))
        self.total += len(data)
        return FRAME_BYTES - self.total % FRAME_BYTES

    async def handle(self, connection: BotConnection) -> None:
        self.connection = connection
        connection.coalesce_reads = True
        try:
            async for message in connection:
                connection.took_message()
                if connection.audio_sink is None:
                    self.sink(message, time.monotonic())
                    connection.audio_sink = self.sink
        except ConnectionClosed:
            pass


async def paced_chunks(ws, n: int, gap_s: float = 0.01) -> list[float]:
    """Send n chunks gap_s apart; when each left."""
    sent = []
    for i in range(n):
        await ws.send(bytes([i]) * CHUNK_BYTES)
        sent.append(time.monotonic())
        await asyncio.sleep(gap_s)
    return sent


async def raised(ws, recorder: FrameSink) -> BotConnection:
    """Send a frame as two chunks (the first through the queue if no sink yet): the second
    completes it, and the mark rises to the next frame's bytes."""
    await paced_chunks(ws, 2)
    await eventually(lambda: recorder.total % FRAME_BYTES == 0 and recorder.total)
    connection = recorder.connection
    assert connection is not None
    await eventually(lambda: connection.low_water == FRAME_BYTES, timeout=1)
    return connection


async def test_a_socket_wakes_once_a_frame_not_for_each_half_of_it():
    recorder = FrameSink()
    async with await start(recorder) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as ws:
            connection = await raised(ws, recorder)
            raw = connection.transport.get_extra_info("socket")
            assert raw.getsockopt(SOL_SOCKET, SO_RCVLOWAT) == FRAME_BYTES
            before = len(recorder.heard)
            # half a frame, then the other half 50 ms later (under QUIET_S): one read of both
            first = await paced_chunks(ws, 1, 0.05)
            second = await paced_chunks(ws, 1, 0.05)
    heard = recorder.heard[before:]
    assert [size for size, _ in heard] == [FRAME_BYTES]  # not read until whole
    assert second[0] <= heard[0][1] < second[0] + 0.04  # read as the frame completed
    assert heard[0][1] > first[0] + 0.04


async def test_what_waits_under_the_mark_is_read_once_the_socket_is_quiet():
    bound = 2 * QUIET_S + 0.05  # quiet for QUIET_S, found at the next check
    recorder = FrameSink()
    async with await start(recorder) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as ws:
            connection = await raised(ws, recorder)
            last = recorder.heard[-1][1]
            await paced_chunks(ws, 1, 0)  # half a frame and then nothing
            await eventually(lambda: recorder.total % FRAME_BYTES, timeout=2)
            assert last + QUIET_S <= recorder.heard[-1][1] < last + bound
            await paced_chunks(ws, 1, 0.02)  # the frame whole: the mark up again
            await eventually(lambda: connection.low_water == FRAME_BYTES, timeout=1)
            started = time.monotonic()
            await asyncio.wait_for(await ws.ping(), 2)  # a ping under the mark: answered
            assert time.monotonic() - started < bound + 0.02
            await raised(ws, recorder)
            started = time.monotonic()
        closed_in = time.monotonic() - started  # the close frame, too, under the mark
    assert closed_in < bound + 0.05
    assert connection.low_water == 1


async def test_a_sink_that_says_nothing_leaves_every_read_waking():
    recorder = Recorder()
    async with await start(recorder) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as ws:
            for i in range(4):
                await ws.send(bytes([i, 0]))
                await asyncio.sleep(0.05)
    inline = [m for path, m in recorder.heard if path == "inline"]
    assert inline == [b"\x01\x00", b"\x02\x00", b"\x03\x00"]
