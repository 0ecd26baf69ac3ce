"""The three bot generations as they behave in the field, through real sockets: the hello's
rate, every rate dual and split, real rosters, the waiting room, leaves that stay left, a
re-sent hello, and transcription mode."""

import asyncio
import json
import time

import numpy as np
import pytest
from websockets.asyncio.client import connect

from bridge.codecs.wav import write_wav
from bridge.sim.simulator import SimulatorOptions, simulate
from tests.helpers import Control, eventually, join_call, session_of
from tests.responders import HookLog
from tests.sounds import ALSA

FRONT_LEFT = str(ALSA / "Front_Left.wav")
REAR_RIGHT = str(ALSA / "Rear_Right.wav")


def bot(generation: str, rate: int, **kw) -> SimulatorOptions:
    kw.setdefault("gap_s", 2.5)
    kw.setdefault("listen_s", 0.5)
    kw.setdefault("lead_in_s", 0.3)
    return SimulatorOptions(bot=generation, sample_rate=rate, **kw)


def urls(server, session_id: str, split: bool) -> list[str]:
    base = f"ws://127.0.0.1:{server.port}/bots/{session_id}"
    return [f"{base}/output", f"{base}/input"] if split else [base]


@pytest.mark.parametrize("split", [False, True], ids=["dual", "split"])
@pytest.mark.parametrize("rate", [16000, 24000, 32000, 48000])
@pytest.mark.parametrize("generation", ["gen1", "gen3", "v2"])
async def test_every_generation_and_rate_is_echoed_at_its_own_rate(
    start_bridge, generation, rate, split
):
    server = await start_bridge("echo")
    session_id = f"{generation}-{rate}-{int(split)}"
    report = await simulate(urls(server, session_id, split), [FRONT_LEFT], bot(generation, rate))
    session = server.sessions.sessions[session_id]
    assert session.sample_rate == rate  # from the hello (gen3, v2) or the URL (gen1)
    assert session.stats.rate_changes == 0
    (utterance,) = report.utterances
    assert utterance.echo_correlation is not None and utterance.echo_correlation > 0.95
    heard_s = session.position_ms() / 1000
    assert heard_s == pytest.approx(report.bytes_sent / 2 / rate)  # audio in, in seconds
    assert report.bytes_received % 2 == 0 and report.underruns == 0


@pytest.mark.parametrize("split", [False, True], ids=["dual", "split"])
async def test_a_48k_bot_without_rate_in_its_url_hears_a_1s_tone_as_1s(
    start_bridge, tmp_path, split
):
    t = np.arange(16000) / 16000
    wav = tmp_path / "tone.wav"
    write_wav(wav, (8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2"), 16000)
    server = await start_bridge("player", (f"file={wav}",))
    opts = bot("v2", 48000, lead_in_s=2.5, gap_s=0.5, burst_chunks=0)  # speech after the tone
    report = await simulate(urls(server, "tone48", split), [FRONT_LEFT], opts)
    assert report.bytes_received / 2 / 48000 == pytest.approx(1.0, abs=0.001)
    session = server.sessions.sessions["tone48"]
    assert session.playout.seconds_out == pytest.approx(1.0, abs=0.001)
    assert "48000 Hz" in session.summary()


async def test_v2_rosters_reach_responders_and_control_with_the_right_people(start_bridge):
    server = await start_bridge("tests.responders:HookLog")
    task = asyncio.create_task(
        simulate(
            urls(server, "v2roster", False),
            [FRONT_LEFT, REAR_RIGHT],
            bot("v2", 24000, speakers=("Alice", "Bob"), gap_s=1.0, burst_chunks=0),
        )
    )
    control = await Control.open(server, "v2roster")
    await task
    starts = [e["name"] for e in control.of_type("speaker_start")]
    stops = [e["name"] for e in control.of_type("speaker_stop")]
    assert starts == ["Alice", "Bob"] and stops == ["Alice", "Bob"]
    roster = control.of_type("speakers")[-1]["speakers"]
    assert [(p["name"], p["id"], p["key"]) for p in roster] == [
        ("Alice", None, "name:Alice"),
        ("Bob", None, "name:Bob"),
    ]
    await control.close()


async def test_gen1_id_zero_rosters_keep_alice_and_bob_apart(start_bridge):
    server = await start_bridge("tests.responders:HookLog")
    seen: list[list[str]] = []

    async def watch() -> None:
        session = await session_of(server, "gen1roster")
        while not session.ended:
            names = [p.name for p in session.info.speaking()]
            if not seen or seen[-1] != names:
                seen.append(names)
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch())
    opts = bot("gen1", 16000, speakers=("Alice", "Bob"), gap_s=1.0)
    await simulate(urls(server, "gen1roster", False), [FRONT_LEFT, REAR_RIGHT], opts)
    await server.sessions.sessions["gen1roster"].end("test over")
    await watcher
    assert ["Alice"] in seen and ["Bob"] in seen  # never "nobody" while one of them speaks
    rosters = [arg for hook, arg in HookLog.calls["gen1roster"] if hook == "speakers"]
    assert ("Alice", True) in rosters[1] and ("Bob", False) in rosters[1]


async def test_the_bots_own_roster_entry_never_barges_in(start_bridge):
    """gen3 lists itself while it plays; here its own voice comes back in the meeting audio
    (a recording spoken under the bot's name): the VAD hears speech, the roster says it is
    the bot: the monologue plays on, whole."""
    server = await start_bridge(
        "tests.responders:Monologue", ("seconds=3",), bot_name="speakbridge", lead_ms=40
    )
    opts = bot("gen3", 24000, speakers=("speakbridge",), gap_s=2.5, listen_s=1.0)
    report = await simulate(urls(server, "selfie", False), [FRONT_LEFT], opts)
    session = server.sessions.sessions["selfie"]
    assert session.stats.barge_ins == 0
    assert report.bytes_received / 2 / 24000 == pytest.approx(3.0, abs=0.01)
    assert session.info.speaking() == []
    assert any(p.is_self for p in session.info.participants.values())


async def test_a_person_speaking_while_the_bot_plays_still_barges_in(start_bridge):
    server = await start_bridge(
        "tests.responders:Monologue", ("seconds=3",), bot_name="speakbridge", lead_ms=40
    )
    opts = bot("gen3", 24000, speakers=("Alice",), gap_s=2.5, listen_s=1.0)
    report = await simulate(urls(server, "barge3", False), [FRONT_LEFT], opts)
    assert server.sessions.sessions["barge3"].stats.barge_ins == 1
    assert report.bytes_received / 2 / 24000 < 1.5


async def test_a_greeting_waits_for_the_bot_to_be_admitted(start_bridge):
    server = await start_bridge("tts", ("greeting=hello everyone",))
    opts = bot("gen3", 24000, waiting_room_s=1.5, lead_in_s=2.0, gap_s=0.5, listen_s=0.5)
    started = time.monotonic()
    report = await simulate(urls(server, "waiting", False), [FRONT_LEFT], opts)
    assert report.bytes_received > 0.5 * 2 * 24000  # the greeting was played...
    first = report.first_audio_at
    assert first is not None and first - started >= 1.5  # ...only once admitted


async def test_a_leave_stays_left_gen3_reconnects_get_410(start_bridge):
    server = await start_bridge("echo", ended_ttl_s=60)
    task = asyncio.create_task(
        simulate(urls(server, "left", False), [FRONT_LEFT], bot("gen3", 24000, gap_s=4.0))
    )
    control = await Control.open(server, "left")
    await eventually(lambda: server.sessions.sessions["left"].phase == "in_call")
    assert (await control.command({"type": "leave"}))["type"] == "ok"
    report = await task
    assert report.close_code == 4004
    assert report.reconnects >= 2 and set(report.refused) == {410}  # 1 s, then 2 s backoff
    assert server.sessions.total == 1 and not server.sessions.sessions
    assert server.sessions.refused_ended == len(report.refused)


async def test_a_hello_resent_mid_session_with_another_rate_retunes_it(start_bridge, tmp_path):
    server = await start_bridge("recorder", (f"dir={tmp_path}",))
    async with connect(f"ws://127.0.0.1:{server.port}/bots/rehello", compression=None) as ws:
        hello = {"protocol_version": 2, "bot_id": "b", "offset": 0.0, "sample_rate": 24000}
        await join_call(ws, json.dumps(hello))
        session = await session_of(server, "rehello")
        await ws.send(np.ones(2400, "<i2").tobytes())
        await eventually(lambda: session.stats.bytes_in == 960 + 4800)
        await ws.send(json.dumps({**hello, "sample_rate": 48000}))  # a reconnect's new hello
        await ws.send(np.ones(4800, "<i2").tobytes())
        await eventually(lambda: session.stats.bytes_in == 960 + 4800 + 9600)
        assert session.sample_rate == 48000 and session.stats.rate_changes == 1
        assert session.position_ms() == pytest.approx(20 + 100 + 100)
        await ws.send(json.dumps({**hello, "sample_rate": 48000}))  # the same rate: no change
        await asyncio.sleep(0.1)
        assert session.stats.rate_changes == 1


async def test_transcription_mode_segments_reach_the_control_channel(start_bridge):
    server = await start_bridge("echo")
    async with connect(f"ws://127.0.0.1:{server.port}/bots/stt/output") as ws:
        await ws.send(json.dumps({"event": "session.started", "bot_id": "b", "data": {}}))
        control = await Control.open(server, "stt")
        segment = {
            "text": "hello there",
            "isFinal": True,
            "utteranceStart": 1.25,
            "utteranceEnd": 2.5,
            "speaker": {"name": "Alice", "id": 3},
        }
        await ws.send(json.dumps({"event": "transcript.segment", "bot_id": "b", "data": segment}))
        await ws.send(
            json.dumps({"event": "transcript.segment", "data": {"text": "par", "isFinal": False}})
        )
        await ws.send(json.dumps({"event": "transcript.segment", "data": {"text": 5}}))
        event = await control.wait_event("transcript", final=True)
        assert event["text"] == "hello there" and event["speaker"] == "Alice"
        assert (event["start_ms"], event["end_ms"]) == (1250, 2500)
        assert event["transcribed_by"] == "meetingbaas"
        partial = await control.wait_event("transcript", final=False)
        assert partial["text"] == "par" and partial["speaker"] is None
        session = server.sessions.sessions["stt"]
        await eventually(lambda: session.stats.dropped["invalid_transcript"] == 1)
        assert session.phase == "in_call"
        await control.close()
