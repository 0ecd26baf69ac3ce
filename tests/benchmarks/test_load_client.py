"""The load generator's WebSocket client against websockets' own server on a real loopback
socket: the frames websockets writes are parsed to exactly what it sent, in any split, and
the pre-masked frames it receives decode to exactly the audio bytes."""

import asyncio
import socket

import numpy as np
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Frame, Opcode

from benchmarks.load import Bot, encode_chunks, loop_chunks, open_bots
from benchmarks.wsclient import (
    OP_BINARY,
    OP_CLOSE,
    OP_TEXT,
    FrameParser,
    HandshakeError,
    ProtocolError,
    accept_for,
    check_handshake,
    close_payload,
    connect,
    encode_frame,
    handshake_request,
    mask,
)
from bridge.sim.generations import PROFILES
from tests.sounds import tone

KEY = b"\x37\xfa\x21\x3d"
RATE = 24000


class Seen:
    """What a FrameParser handed over, in order."""

    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.parser = FrameParser(self.binary, self.text, self.ping, self.close)

    def binary(self, buffer: bytearray, start: int, stop: int) -> None:
        self.events.append(("binary", bytes(buffer[start:stop])))

    def text(self, payload: bytes) -> None:
        self.events.append(("text", payload.decode()))

    def ping(self, payload: bytes) -> None:
        self.events.append(("ping", payload))

    def close(self, code: int | None, reason: bytes) -> None:
        self.events.append(("close", code, reason.decode()))


def speech_bytes(n: int) -> bytes:
    return (tone(440, n / RATE, RATE) * 0.5 * 32767).astype("<i2").tobytes()


async def serve_script(script):
    """A websockets server on loopback whose handler is script(connection)."""
    return await serve(script, "127.0.0.1", 0, compression=None, max_size=1 << 20)


async def raw_upgrade(port: int, path: str = "/bots/t") -> tuple[socket.socket, bytes]:
    """A plain socket upgraded with handshake_request; the response head and what follows."""
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, handshake_request(f"127.0.0.1:{port}", path, key))
    data = b""
    while b"\r\n\r\n" not in data:
        data += await loop.sock_recv(sock, 65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    check_handshake(head, key)
    return sock, rest


async def read_all(sock: socket.socket, first: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    data = first
    while chunk := await loop.sock_recv(sock, 65536):
        data += chunk
    return data


AUDIO = speech_bytes(2400)  # 100 ms at 24 kHz
BIG = speech_bytes(40000)  # 80 KB: a 64-bit length field
SCRIPTED = [
    ("binary", AUDIO),
    ("text", '{"type": "event", "name": "hello"}'),
    ("binary", b""),
    ("binary", BIG),
    ("ping", b"are you there"),
    ("binary", AUDIO[:250]),  # a 7-bit length
    ("binary", b"ab"),  # a fragmented message: one call per fragment, as on the wire
    ("binary", b"cdef"),
    ("binary", b""),  # websockets ends a fragmented message with an empty final frame
    ("text", "\u00e9t\u00e9 frag"),
    ("close", 4001, "scripted end"),
]


async def scripted(connection: ServerConnection) -> None:
    await connection.send(AUDIO)
    await connection.send('{"type": "event", "name": "hello"}')
    await connection.send(b"")
    await connection.send(BIG)
    await connection.ping(b"are you there")
    await connection.send(AUDIO[:250])
    await connection.send([b"ab", b"cdef"])
    await connection.send(["\u00e9t\u00e9", " frag"])
    await connection.close(4001, "scripted end")


async def test_the_parser_sees_exactly_what_websockets_sent_in_any_split():
    async with await serve_script(scripted) as server:
        sock, rest = await raw_upgrade(server.sockets[0].getsockname()[1])
        loop = asyncio.get_running_loop()
        seen, stream = Seen(), rest
        seen.parser.feed(rest)
        while not any(event[0] == "close" for event in seen.events):
            chunk = await loop.sock_recv(sock, 65536)
            assert chunk, "the server ended the connection before its close frame"
            stream += chunk
            seen.parser.feed(chunk)
        # answer the close, so that the server ends the TCP connection
        await loop.sock_sendall(sock, encode_frame(OP_CLOSE, close_payload(4001), KEY))
        stream = await read_all(sock, stream)
        sock.close()
    whole = Seen()
    whole.parser.feed(stream)
    assert whole.events == SCRIPTED
    bytewise = Seen()
    for i in range(len(stream)):
        bytewise.parser.feed(stream[i : i + 1])
    assert bytewise.events == SCRIPTED
    rng = np.random.default_rng(7)
    cuts = sorted(rng.choice(len(stream), 40, replace=False).tolist())
    pieces = Seen()
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        pieces.parser.feed(stream[a:b])
    assert pieces.events == SCRIPTED


def test_one_frame_a_read_gives_the_same_as_a_stream():
    """The parser's shortcut for a read holding exactly one binary frame, on frames that
    websockets' own serializer wrote (7-, 16- and 64-bit lengths), between others."""
    lengths = [0, 1, 125, 126, 4800, 65535, 65536, 80000]
    payloads = [speech_bytes(n)[:n] for n in lengths]
    frames = [Frame(Opcode.BINARY, p).serialize(mask=False, extensions=[]) for p in payloads]
    frames.insert(3, Frame(Opcode.TEXT, b"between").serialize(mask=False, extensions=[]))
    expected = [("binary", p) for p in payloads]
    expected.insert(3, ("text", "between"))
    one_by_one, stream = Seen(), Seen()
    for frame in frames:
        one_by_one.parser.feed(frame)
    stream.parser.feed(b"".join(frames))
    assert one_by_one.events == stream.events == expected


async def test_pre_masked_frames_reach_websockets_as_the_exact_audio():
    received: list[bytes | str] = []
    codes: list[int | None] = []

    async def record(connection: ServerConnection) -> None:
        try:
            async for message in connection:
                received.append(message)
        finally:
            codes.append(connection.close_code)

    chunks = loop_chunks(np.frombuffer(speech_bytes(24000), dtype="<i2"), 2400)
    frames = encode_chunks(chunks, [KEY, b"\x00\xff\x10\x80"])
    assert frames[0][0] != frames[1][0]  # the keys really mask
    async with await serve_script(record) as server:
        port = server.sockets[0].getsockname()[1]
        client = await connect("127.0.0.1", port, "/bots/x", KEY, lambda *a: None)
        client.send_text('{"protocol_version": 1}')
        for frame in frames[0]:
            client.write(frame)
        assert await client.close() == 1000  # the server's answer to our 1000
        server.close()
        await server.wait_closed()
    assert received == ['{"protocol_version": 1}', *chunks]
    assert codes == [1000]


async def test_a_ping_is_answered_with_its_payload():
    pongs: list[float] = []

    async def ping_twice(connection: ServerConnection) -> None:
        for _ in range(2):
            waiter = await connection.ping(b"\x01\x02payload")
            pongs.append(await asyncio.wait_for(waiter, 5))
        await connection.close()

    async with await serve_script(ping_twice) as server:
        port = server.sockets[0].getsockname()[1]
        client = await connect("127.0.0.1", port, "/bots/p", KEY, lambda *a: None)
        assert await asyncio.wait_for(client.closed, 10) == 1000
    assert len(pongs) == 2  # websockets matched both pongs to its pings


async def test_bots_stream_pre_encoded_chunks_and_time_every_echo():
    """The load generator's own bots through a websockets echo: everything sent comes back,
    every chunk gets a round trip, and the hello and roster went first, as the profile says."""
    texts: list[str] = []
    codes: list[int | None] = []

    async def echo(connection: ServerConnection) -> None:
        async for message in connection:
            if isinstance(message, bytes):
                await connection.send(message)
            else:
                texts.append(message)
        codes.append(connection.close_code)

    class Server:
        def __init__(self, port: int) -> None:
            self.port = port

        def port_for(self, session: str) -> int:
            return self.port

    audio = np.frombuffer(speech_bytes(RATE * 2), dtype="<i2")
    profile = PROFILES["gen3"]
    chunk = profile.samples_per_message(RATE, 20)
    chunks = loop_chunks(audio, chunk)
    frames = encode_chunks(chunks, [KEY])
    bots = [Bot(frames[0], first, chunk, RATE) for first in (0, 5, 9)]
    async with await serve_script(echo) as server:
        await open_bots(Server(server.sockets[0].getsockname()[1]), bots, profile, RATE, "t")
        for bot in bots:
            bot.measuring = True
        for k in range(30):
            for bot in bots:
                bot.send_next(due=float(k))
        for _ in range(500):
            if all(b.stats.received == 30 * chunk for b in bots):
                break
            await asyncio.sleep(0.01)
        for bot in bots:
            await bot.client.close()
        server.close()
        await server.wait_closed()
    assert codes == [1000] * 3
    for bot in bots:
        assert bot.stats.received == 30 * chunk
        assert len(bot.stats.rtts) == 30
        assert min(bot.stats.rtts) > 0
    assert len(texts) == 6  # a hello and a roster per bot
    assert '"sample_rate": 24000' in texts[0] and '"deviceId"' in texts[1]


def test_the_handshake_check_takes_only_the_right_accept():
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    assert accept_for(key) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 section 1.3
    good = (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_for(key)}"
    )
    check_handshake(good.encode(), key)
    bad = {
        "refused": good.replace("101 Switching Protocols", "403 Forbidden"),
        "wrong accept": good.replace(accept_for(key), accept_for("x" + key[1:])),
        "no upgrade": good.replace("Upgrade: websocket\r\n", ""),
        "extension": good + "\r\nSec-WebSocket-Extensions: permessage-deflate",
    }
    for what, head in bad.items():
        with pytest.raises(HandshakeError):
            check_handshake(head.encode(), key)
            pytest.fail(f"{what}: accepted")


async def test_a_real_refusal_is_a_handshake_error():
    async def never(connection: ServerConnection) -> None:
        await connection.close()

    def refuse(connection, request):
        return connection.respond(404, "no such bot\n")

    async with serve(never, "127.0.0.1", 0, process_request=refuse) as server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(HandshakeError, match="404"):
            await connect("127.0.0.1", port, "/nowhere", KEY, lambda *a: None, timeout=5)


def test_frames_a_server_must_not_send_are_protocol_errors():
    for frame in (
        encode_frame(OP_BINARY, b"masked", KEY),  # servers never mask
        bytes([0xC2, 0x01]) + b"x",  # RSV1 without an extension
        bytes([0x83, 0x00]),  # a reserved opcode
        bytes([0x80, 0x01]) + b"x",  # a continuation with nothing to continue
        bytes([0x09, 0x00]),  # a fragmented ping
        bytes([0x88, 0x01]) + b"x",  # a one-byte close payload
    ):
        with pytest.raises(ProtocolError):
            Seen().parser.feed(frame)
    with pytest.raises(ProtocolError, match="limit"):
        FrameParser(*[lambda *a: None] * 4, max_frame_bytes=100).feed(
            bytes([0x82, 126]) + (101).to_bytes(2, "big")
        )


def test_masking_twice_gives_the_payload_back():
    payload = speech_bytes(333)
    assert mask(mask(payload, KEY), KEY) == payload
    assert mask(payload, KEY) != payload
    assert encode_frame(OP_TEXT, b"", KEY) == bytes([0x81, 0x80]) + KEY
