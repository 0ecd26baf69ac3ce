"""BotConnection: binary messages skip the queue only when nothing queued is ahead of them."""

import asyncio

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State
from websockets.server import ServerProtocol

from bridge.connection import BotConnection, binary_frame_header


class Recorder:
    """A handler that takes messages slowly (so a backlog queues up) and, after the first
    binary one, installs a sink that records what arrives inline."""

    def __init__(self, sink_raises: bool = False) -> None:
        self.heard: list[tuple[str, bytes | str]] = []
        self.sink_raises = sink_raises

    def sink(self, data: bytes) -> None:
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


async def start(recorder: Recorder):
    return await serve(recorder.handle, "127.0.0.1", 0, create_connection=BotConnection)


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


@pytest.mark.parametrize("length", [0, 1, 125, 126, 960, 65535, 65536, 70000])
def test_audio_frames_are_the_bytes_websockets_would_write(length):
    protocol = ServerProtocol()
    protocol.state = State.OPEN
    data = bytes(range(256)) * (length // 256) + bytes(length % 256)
    protocol.send_binary(data)
    assert binary_frame_header(length) + data == b"".join(protocol.data_to_send())


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
