"""Bad input over real sockets: each gets its defined outcome and disturbs no other session."""

import asyncio
import contextlib
import json
import logging

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bridge.sim.simulator import SimulatorOptions, simulate
from bridge.wire.protocol import CloseCode
from tests.helpers import join_call
from tests.sounds import ALSA

HELLO = json.dumps({"protocol_version": 1, "bot_id": "b", "offset": 0.0})


async def eventually(condition, timeout: float = 5.0) -> None:
    """Wait until the server has handled what was sent (its handler runs after our send)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def refused_status(url: str) -> int:
    with pytest.raises(InvalidStatus) as info:
        async with connect(url):
            pass
    return info.value.response.status_code


async def close_code_after(ws, *messages) -> int | None:
    for message in messages:
        await ws.send(message)
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 5)
    return ws.close_code


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/", 404),
        ("/healthz-typo", 404),
        ("/bots/x/speaker", 404),
        ("/bots/x?rate=44100", 400),
        ("/bots/x?rate=abc", 400),
        ("/bots/%20bad", 400),
    ],
)
async def test_refused_before_the_upgrade(start_bridge, path, status, caplog):
    server = await start_bridge()
    with caplog.at_level(logging.WARNING, logger="bridge"):
        assert await refused_status(f"ws://127.0.0.1:{server.port}{path}") == status
    refusals = [r for r in caplog.records if r.getMessage().startswith("refused")]
    assert [r.levelname for r in refusals] == ["WARNING"]
    assert not server.sessions.sessions


async def test_third_socket_gets_409(start_bridge):
    server = await start_bridge()
    base = f"ws://127.0.0.1:{server.port}/bots/full"
    async with connect(f"{base}/output"), connect(f"{base}/input"):
        await asyncio.sleep(0.05)
        assert await refused_status(base) == 409  # a third socket
    assert server.sessions.total == 1


async def test_bad_text_is_counted_ignored_and_logged_once(start_bridge, caplog):
    server = await start_bridge()
    junk = ["hello", "{not json", "42", '{"bot_id": 7}', '[{"name": "A"}]', "{not json"]
    async with connect(f"ws://127.0.0.1:{server.port}/bots/junk") as ws:
        with caplog.at_level(logging.WARNING, logger="bridge"):
            await ws.send(HELLO)
            for text in junk:
                await ws.send(text)
            await ws.send(np.zeros(480, dtype=np.int16).tobytes())
            session = server.sessions.sessions["junk"]
            await eventually(lambda: session.stats.bytes_in)
        assert session.stats.dropped == {
            "invalid_json": 3,
            "unknown_message": 1,
            "invalid_message": 2,
        }
        assert session.stats.bytes_in == 960  # audio after the junk still flows
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len([w for w in warnings if "invalid_json" in w]) == 1


async def test_odd_byte_count_is_dropped_and_counted(start_bridge):
    server = await start_bridge()
    async with connect(f"ws://127.0.0.1:{server.port}/bots/odd") as ws:
        await ws.send(HELLO)
        await ws.send(b"\x00" * 961)
        await ws.send(b"\x00" * 960)
        session = server.sessions.sessions["odd"]
        await eventually(lambda: session.stats.bytes_in)
        assert session.stats.dropped == {"odd_length": 1}
        assert session.stats.bytes_in == 960


async def test_oversized_frame_closes_1009(start_bridge):
    server = await start_bridge(max_message_bytes=4096)
    async with connect(f"ws://127.0.0.1:{server.port}/bots/big", max_size=None) as ws:
        code = await close_code_after(ws, HELLO, b"\x00" * 4098)
    assert code == CloseCode.MESSAGE_TOO_BIG


async def test_second_audio_source_closes_4003(start_bridge):
    server = await start_bridge()
    base = f"ws://127.0.0.1:{server.port}/bots/two-sources"
    async with connect(f"{base}/output") as first, connect(f"{base}/input") as second:
        await first.send(HELLO)
        await first.send(b"\x00" * 960)
        session = server.sessions.sessions["two-sources"]
        await eventually(lambda: session.stats.bytes_in)
        assert await close_code_after(second, b"\x00" * 960) == CloseCode.SECOND_SOURCE
        await first.send(b"\x00" * 960)  # the first source is untouched
        await eventually(lambda: session.stats.bytes_in == 1920)
    assert session.stats.dropped == {"second_source": 1}


async def test_same_url_again_replaces_the_old_socket(start_bridge):
    """A bot reconnecting while its old socket is half-open: the newer one wins."""
    server = await start_bridge()
    url = f"ws://127.0.0.1:{server.port}/bots/replace"
    async with connect(url) as old, connect(url) as new:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(old.recv(), 5)
        assert old.close_code == CloseCode.REPLACED
        await new.send(HELLO)
        session = server.sessions.sessions["replace"]
        await eventually(lambda: session.info.bot_id == "b")
    assert session.stats.sockets == 2


async def test_bad_input_does_not_disturb_another_session(start_bridge):
    server = await start_bridge(max_message_bytes=8192)
    base = f"ws://127.0.0.1:{server.port}/bots"

    async def attacker(n: int) -> None:
        rng = np.random.default_rng(n)
        async with connect(f"{base}/attack-{n}", max_size=None) as ws:
            await ws.send(HELLO)
            for i in range(200):
                kind = i % 4
                if kind == 0:
                    await ws.send(rng.bytes(int(rng.integers(1, 4000)) | 1))  # odd lengths
                elif kind == 1:
                    await ws.send(json.dumps({"protocol_version": "x"}))
                elif kind == 2:
                    await ws.send("\x00garbage")
                else:
                    await ws.send(rng.bytes(2 * int(rng.integers(1, 2000))))  # loud noise
                await asyncio.sleep(0.005)
            with pytest.raises(ConnectionClosed):
                await ws.send(b"\x00" * 9000)
                await asyncio.wait_for(ws.recv(), 5)

    async def refused() -> None:
        for path in ("/nope", "/bots/x?rate=1"):
            await refused_status(f"ws://127.0.0.1:{server.port}{path}")

    good = simulate(
        [f"{base}/good"],
        [str(ALSA / "Front_Left.wav")],
        SimulatorOptions(lead_in_s=0.3, gap_s=2.5, listen_s=0.3),
    )
    report, *_ = await asyncio.gather(good, *(attacker(n) for n in range(4)), refused())
    (utterance,) = report.utterances
    assert utterance.echo_correlation is not None and utterance.echo_correlation > 0.99
    assert report.underruns == 0
    assert server.sessions.sessions["good"].stats.dropped == {}


async def test_oversized_frame_is_logged_as_such(start_bridge, caplog):
    server = await start_bridge(max_message_bytes=4096)
    with caplog.at_level(logging.WARNING, logger="bridge"):
        async with connect(f"ws://127.0.0.1:{server.port}/bots/big2", max_size=None) as ws:
            await close_code_after(ws, b"\x00" * 5000)
        await eventually(lambda: any("max_message_bytes" in r.getMessage() for r in caplog.records))


def raw_binary_frames(ws, count: int, samples: int = 480) -> bytes:
    """count masked audio frames as the client would write them, for its transport."""
    for _ in range(count):
        ws.protocol.send_binary(np.full(samples, 1000, dtype=np.int16).tobytes())
    return b"".join(ws.protocol.data_to_send())


async def test_a_replaced_socket_no_longer_feeds_the_session(start_bridge):
    server = await start_bridge()
    url = f"ws://127.0.0.1:{server.port}/bots/stale"
    old = await connect(url, compression=None)
    await old.send(HELLO)
    await old.send(b"\x00" * 960)  # the source, on the inline path from now on
    session = server.sessions.sessions["stale"]
    await eventually(lambda: session.stats.bytes_in == 960)
    old.transport.pause_reading()  # it does not hear its close: a half-open bot socket
    new = await connect(url, compression=None)
    await eventually(lambda: session.stats.sockets == 2)
    old.transport.write(raw_binary_frames(old, 100))  # 2 s of audio from the replaced socket
    await asyncio.sleep(0.3)
    assert session.stats.bytes_in == 960  # none of it reached the session
    assert session.stats.dropped["stale_socket"] >= 1
    await new.send(HELLO)
    await new.send(b"\x00" * 960)  # the new socket is the source now
    await eventually(lambda: session.stats.bytes_in == 1920)
    await new.close()
    old.transport.abort()


async def test_a_socket_refused_as_a_second_source_hears_no_playback(start_bridge):
    server = await start_bridge("player", (f"file={ALSA / 'Front_Left.wav'}", "at_start=false"))
    base = f"ws://127.0.0.1:{server.port}/bots/refused"
    source = await connect(f"{base}/input", compression=None)  # audio in; it hears too
    await join_call(source, HELLO)  # in the call: speech may go out
    session = server.sessions.sessions["refused"]
    await eventually(lambda: session.phase == "in_call")
    second = await connect(f"{base}/output", compression=None)
    await eventually(lambda: len(session.links) == 2)
    second.transport.write(raw_binary_frames(second, 1))  # audio too: refused 4003
    second.transport.pause_reading()  # and it never answers the close: 2 s of close timeout
    await eventually(lambda: session.stats.dropped["second_source"] == 1)
    assert session.delegate("play", {"type": "play"})  # the player speaks now
    await asyncio.sleep(1.0)
    second.transport.resume_reading()
    heard = []
    with pytest.raises(ConnectionClosed):
        while True:
            message = await asyncio.wait_for(second.recv(), 5)
            heard.append(message)
    assert second.close_code == CloseCode.SECOND_SOURCE
    assert heard == []  # not one frame of the session's speech
    spoken = b""
    with contextlib.suppress(TimeoutError):
        while True:  # it went to the source socket, the one left
            message = await asyncio.wait_for(source.recv(), 0.5)
            spoken += message if isinstance(message, bytes) else b""
    assert len(spoken) > 0.5 * 24000 * 2
    assert session.stats.dropped["playback_socket_closed"] == 0  # none lost on the way out
    await source.close()
