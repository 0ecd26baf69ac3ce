"""The echo responder end to end: a simulated bot on real loopback sockets, real recordings."""

import asyncio

import numpy as np
import pytest
from websockets.asyncio.client import connect

from bridge.sim.simulator import SimulatorOptions, simulate
from tests.helpers import eventually, session_of
from tests.responders import HookLog
from tests.sounds import ALSA

FRONT_LEFT = str(ALSA / "Front_Left.wav")
REAR_RIGHT = str(ALSA / "Rear_Right.wav")


def opts(rate: int, **kw) -> SimulatorOptions:
    kw.setdefault("gap_s", 2.5)
    kw.setdefault("listen_s", 0.3)
    return SimulatorOptions(sample_rate=rate, lead_in_s=0.3, **kw)


def assert_echoed(report, lead_ms: float) -> None:
    for utterance in report.utterances:
        assert utterance.echo_correlation is not None, f"{utterance.name}: nothing came back"
        assert utterance.echo_correlation > 0.99, utterance
        assert utterance.reply_latency_ms is not None and utterance.reply_latency_ms < 1000
    assert report.underruns == 0
    assert max(report.leads_ms) <= lead_ms + 5  # the pacer's bound, plus loopback delivery


@pytest.mark.parametrize("rate", [16000, 24000])
async def test_echo_round_trip_one_socket(start_bridge, rate):
    server = await start_bridge()
    url = f"ws://127.0.0.1:{server.port}/bots/echo-{rate}?rate={rate}"
    report = await simulate([url], [FRONT_LEFT, REAR_RIGHT], opts(rate))
    assert_echoed(report, server.config.lead_ms)
    session = server.sessions.sessions[f"echo-{rate}"]
    assert session.sample_rate == rate
    assert session.floor.turns_started == 2  # one per recording, whatever pauses it holds
    assert session.pipeline.speech_segments >= 2
    assert session.stats.bytes_in == report.bytes_sent
    assert session.playout.samples_out * 2 == report.bytes_received


async def test_rate_defaults_to_the_server_setting(start_bridge):
    server = await start_bridge(rate=16000)
    url = f"ws://127.0.0.1:{server.port}/bots/default-rate"
    report = await simulate([url], [FRONT_LEFT], opts(16000))
    assert_echoed(report, server.config.lead_ms)
    assert server.sessions.sessions["default-rate"].sample_rate == 16000


@pytest.mark.parametrize(
    "order", [("output", "input"), ("input", "output")], ids=["split", "swapped"]
)
async def test_split_sockets_in_either_order(start_bridge, order):
    """Two sockets: audio on one, playback on the other, whichever URL the user put where."""
    server = await start_bridge()
    base = f"ws://127.0.0.1:{server.port}/bots/split"
    report = await simulate([f"{base}/{order[0]}", f"{base}/{order[1]}"], [FRONT_LEFT], opts(24000))
    assert_echoed(report, server.config.lead_ms)  # the simulator only listens on its second socket
    assert server.sessions.sessions["split"].stats.sockets == 2


async def test_speaker_events_and_hooks_reach_the_responder(start_bridge):
    server = await start_bridge("tests.responders:HookLog")
    url = f"ws://127.0.0.1:{server.port}/bots/hooks"
    report = await simulate([url], [FRONT_LEFT], opts(24000, gap_s=1.0))
    await server.close()  # ends the session: on_stop runs
    calls = HookLog.calls["hooks"]
    hooks = [hook for hook, _ in calls]
    assert hooks[:2] == ["start", "join"] and hooks[-1] == "stop"
    assert calls[-1][1] == "simulated-bot"  # the hello's bot id
    speakers = [arg for hook, arg in calls if hook == "speakers"]
    assert speakers == [  # the whole roster: on admission, then each change
        [("Simulated Speaker", False)],
        [("Simulated Speaker", True)],
        [("Simulated Speaker", False)],
    ]
    frames = [arg for hook, arg in calls if hook == "audio"]
    assert set(frames) == {480}  # 20 ms at the bot's 24 kHz
    assert len(frames) == report.bytes_sent // 2 // 480
    start = hooks.index("speech_start")
    assert hooks.index("speakers") < start < hooks.index("speech_stop")


async def test_barge_in_stops_the_bot_and_tells_the_responder(start_bridge):
    """The responder speaks a 4 s tone; the user talks over it at 0.5 s; the tone stops."""
    server = await start_bridge("tests.responders:Monologue", ("seconds=4",), lead_ms=40)
    url = f"ws://127.0.0.1:{server.port}/bots/barge"
    report = await simulate([url], [FRONT_LEFT], SimulatorOptions(lead_in_s=0.5, gap_s=1.0))
    session = server.sessions.sessions["barge"]
    assert session.stats.barge_ins == 1
    interrupted = [arg for hook, arg in HookLog.calls["barge"] if hook == "interrupted"]
    assert len(interrupted) == 1 and interrupted[0].interrupted
    played = interrupted[0].sent
    assert played * 2 == report.bytes_received  # every sample sent reached the bot, no more
    assert interrupted[0].dropped > 0
    # the bot fell silent within the VAD's start window plus the lead of the user's speech
    heard_s = report.bytes_received / 2 / 24000
    assert 0.4 < heard_s < 0.5 + 0.2 + 0.04 + 0.15


async def test_reconnect_keeps_the_session_and_its_queued_speech(start_bridge):
    server = await start_bridge("echo", grace_s=5.0)
    from websockets.asyncio.client import connect

    from bridge.sim.simulator import best_alignment
    from tests.sounds import recording

    speech = recording("Front_Left", 24000)
    url = f"ws://127.0.0.1:{server.port}/bots/reconnect"
    burst = np.concatenate([speech, np.zeros(24000, dtype=np.int16)])
    async with connect(url, compression=None) as first:
        await first.send('{"protocol_version": 1, "bot_id": "rc", "offset": 0}')
        for at in range(0, len(burst), 480):
            await first.send(burst[at : at + 480].tobytes())
    # the bot dropped its socket just as the echo began; it comes back a moment later
    await asyncio.sleep(0.2)
    received = []
    async with connect(url, compression=None) as second:
        await second.send('{"protocol_version": 1, "bot_id": "rc", "offset": 0}')
        try:
            while True:
                received.append(await asyncio.wait_for(second.recv(), 1.0))
        except TimeoutError:
            pass
        session = server.sessions.sessions["reconnect"]
        assert server.sessions.total == 1 and session.stats.sockets == 2
    tail = np.frombuffer(b"".join(received), dtype="<i2")
    assert len(tail) > len(speech) // 2  # most of the echo waited for the new socket
    _, correlation = best_alignment(tail, speech)
    assert correlation is not None and correlation > 0.99
    assert session.stats.bytes_in == len(burst) * 2


async def test_live_echo_loops_frames_straight_back(start_bridge):
    server = await start_bridge("echo", ("mode=live",))
    url = f"ws://127.0.0.1:{server.port}/bots/live"
    report = await simulate([url], [FRONT_LEFT], opts(24000, gap_s=0.5, burst_chunks=0))
    (utterance,) = report.utterances
    assert utterance.echo_correlation is not None and utterance.echo_correlation > 0.99
    # one frame of framing plus the playout's prebuffer (40 ms), give or take loopback jitter
    assert utterance.echo_delay_ms is not None and utterance.echo_delay_ms < 100
    assert report.underruns == 0
    assert report.bytes_received == report.bytes_sent // 960 * 960  # whole 20 ms frames
    assert server.sessions.sessions["live"].stats.barge_ins == 0


async def test_a_v2_bots_100ms_chunks_are_echoed_a_message_a_chunk(start_bridge):
    """The lead grows to hold one whole input chunk and a frame: each 100 ms chunk's live
    echo goes in one message, not 80 ms now and the rest from a timer (the default lead is
    80 ms), even when the first chunk came late and every later one comes early.

    The bot's playback margin is how late the first chunk came: 20 ms, above what the
    simulator's own stalls explain (15 ms), so any gap left is the bridge's."""
    server = await start_bridge("echo", ("mode=live",))
    url = f"ws://127.0.0.1:{server.port}/bots/v2live"
    options = opts(24000, bot="v2", gap_s=0.5, burst_chunks=0, start_late_ms=20)
    report = await simulate([url], [FRONT_LEFT], options)
    (utterance,) = report.utterances
    assert utterance.echo_correlation is not None and utterance.echo_correlation > 0.99
    assert report.underruns == 0
    chunks = report.bytes_sent // 4800  # 100 ms at 24 kHz
    assert report.bytes_received >= (chunks - 1) * 4800
    assert chunks <= report.messages_received <= chunks * 1.1 + 2  # jitter may split a few
    session = server.sessions.sessions["v2live"]
    assert session.playout.pacer.lead == pytest.approx(0.12)
    # the chunk, the bot's margin (the first chunk's lateness), loopback, the loop's jitter
    assert max(report.leads_ms) <= 100 + 20 + 5 + 20


async def test_a_10ms_chunk_waits_for_the_next_to_be_heard_and_is_counted_at_once(start_bridge):
    """Today's bot's 10 ms chunk completes no 20 ms frame: it is counted when it comes, and
    heard (framed, judged, echoed) with the next one; the session's end hears the last.
    Its socket is then read only once a frame can be whole, or once it has gone quiet."""
    server = await start_bridge("echo", ("mode=live",), prebuffer_ms=0)
    tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(720) / 24000)).astype("<i2")
    chunks = [tone[at : at + 240].tobytes() for at in (0, 240, 480)]
    async with connect(f"ws://127.0.0.1:{server.port}/bots/tens?rate=24000") as ws:
        await ws.send(chunks[0])
        session = await session_of(server, "tens")
        await eventually(lambda: session.stats.bytes_in == 480)
        assert session.pipeline.samples_in == 0 and session.position_ms() == 10.0
        await ws.send(chunks[1])
        echo = await asyncio.wait_for(ws.recv(), 5)
        assert echo == chunks[0] + chunks[1]  # one 20 ms message, both chunks exactly
        assert session.pipeline.samples_in == 480
        source = next(link.connection for link in session.links.values() if link.source)
        assert source.low_water == 960  # its socket wakes for the next frame's 20 ms, whole
        await ws.send(chunks[2])  # half of it, and then nothing: read once the socket is quiet
        await eventually(lambda: session.stats.bytes_in == 1440)
        assert source.low_water == 1
        await session.end("test")
    assert session.pipeline.samples_in == 720 and session.position_ms() == 30.0
