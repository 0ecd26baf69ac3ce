"""Bad input over real sockets: each gets its defined outcome and disturbs no other session."""

import asyncio
import json
import logging

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bridge.sim.simulator import SimulatorOptions, simulate
from bridge.wire.protocol import CloseCode
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
