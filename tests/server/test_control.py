"""The control channel over real sockets: commands, errors, events, listing, CLI clients."""

import asyncio
import base64
import io
import json
import subprocess
import sys

import httpx
import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bridge.codecs.wav import write_wav
from bridge.sim.simulator import SimulatorOptions, simulate
from bridge.wire.protocol import CloseCode
from bridge.wire.signing import control_url
from tests.helpers import Control, eventually, join_call
from tests.sounds import ALSA, recording, tone

HELLO = json.dumps({"protocol_version": 1, "bot_id": "b1", "offset": 0.0})


async def bot(server, session_id: str):
    ws = await connect(f"ws://127.0.0.1:{server.port}/bots/{session_id}", compression=None)
    await join_call(ws, HELLO)
    await eventually(
        lambda: (
            server.sessions.sessions.get(session_id, None)
            and (server.sessions.sessions[session_id].phase == "in_call")
        )
    )
    return ws


async def received_audio(ws, seconds: float) -> np.ndarray:
    chunks = []
    try:
        async with asyncio.timeout(seconds):
            async for message in ws:
                chunks.append(message)
    except TimeoutError:
        pass
    return np.frombuffer(b"".join(chunks), dtype="<i2")


@pytest.mark.parametrize(
    ("command", "error"),
    [
        ("not json", "Invalid JSON"),
        ('{"type": "dance"}', "does not match any of the expected tags"),
        ('{"type": "say"}', "say.text: Field required"),
        ('{"type": "say", "text": ""}', "say.text: String should have at least 1 character"),
        ('{"type": "say", "text": "hi", "speed": 5}', "say.speed: Input should be greater"),
        ('{"type": "play", "audio": "%%%"}', "play: Value error, audio is not valid base64"),
        ('{"type": "play", "path": "x.wav"}', "path: playing files is off"),
        ('{"type": "play"}', "path: give path or audio (this session has no player"),
    ],
)
async def test_bad_commands_name_the_field_and_keep_the_channel(start_bridge, command, error):
    server = await start_bridge("echo")
    ws = await bot(server, "ctl")
    control = await Control.open(server, "ctl")
    reply = await control.command(command)
    assert reply["type"] == "error" and error in reply["error"], reply
    assert await control.command({"type": "interrupt"}) == {"type": "ok", "command": "interrupt"}
    await control.close()
    await ws.close()


async def test_say_without_a_tts_responder_uses_espeak_defaults(start_bridge):
    server = await start_bridge("echo")
    ws = await bot(server, "say")
    control = await Control.open(server, "say")
    assert (await control.command({"type": "say", "text": "hello there"}))["type"] == "ok"
    audio = await received_audio(ws, 1.5)
    assert len(audio) > 12000 and np.abs(audio).max() > 3000
    await control.wait_event("utterance_end")
    await control.close()
    await ws.close()


async def test_play_inline_wav_and_raw_pcm(start_bridge):
    server = await start_bridge("echo")
    ws = await bot(server, "inline")
    control = await Control.open(server, "inline")
    beep = tone(1000, 0.3, 16000)
    wav = io.BytesIO()
    write_wav(wav, beep, 16000)
    for command in (
        {"type": "play", "audio": base64.b64encode(wav.getvalue()).decode()},
        {"type": "play", "audio": base64.b64encode(beep.tobytes()).decode(), "sample_rate": 16000},
    ):
        assert (await control.command(command))["type"] == "ok"
    audio = await received_audio(ws, 1.2)
    assert abs(len(audio) - 2 * 0.3 * 24000) < 480  # both, resampled to the bot's 24 kHz
    await control.close()
    await ws.close()


async def test_play_from_the_media_dir_only(start_bridge, tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    write_wav(media / "jingle.wav", tone(500, 0.2, 24000), 24000)
    (tmp_path / "secret.wav").write_bytes((media / "jingle.wav").read_bytes())
    server = await start_bridge("echo", media_dir=media)
    ws = await bot(server, "media")
    control = await Control.open(server, "media")
    assert (await control.command({"type": "play", "path": "jingle.wav"}))["type"] == "ok"
    for escape in ("../secret.wav", str(tmp_path / "secret.wav"), "nope.wav"):
        reply = await control.command({"type": "play", "path": escape})
        assert reply["type"] == "error" and "no such file in the media directory" in reply["error"]
    assert len(await received_audio(ws, 0.8)) == 4800
    await control.close()
    await ws.close()


async def test_interrupt_stops_the_bot_within_the_lead(start_bridge, tmp_path):
    server = await start_bridge("player", (f"file={ALSA / 'Front_Left.wav'}",), lead_ms=40)
    ws = await bot(server, "int")
    control = await Control.open(server, "int")
    await asyncio.sleep(0.5)
    assert (await control.command({"type": "interrupt"}))["type"] == "ok"
    audio = await received_audio(ws, 1.0)
    full = len(recording("Front_Left", 24000))
    assert 0.45 * 24000 < len(audio) < (0.5 + 0.04 + 0.1) * 24000 < full
    event = await control.wait_event("utterance_end")
    assert event["interrupted"] and event["dropped_ms"] > 500
    await control.close()
    await ws.close()


async def test_leave_ends_the_session(start_bridge):
    server = await start_bridge("echo")
    ws = await bot(server, "leave")
    control = await Control.open(server, "leave")
    assert (await control.command({"type": "leave"}))["type"] == "ok"
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code == CloseCode.SESSION_ENDED
    await control.wait_event("session_end", reason="leave command")
    await eventually(lambda: "leave" not in server.sessions.sessions)
    await control.close()


async def test_events_stream_what_happens(start_bridge):
    server = await start_bridge("echo")
    url = f"ws://127.0.0.1:{server.port}/bots/ev"
    opts = SimulatorOptions(lead_in_s=0.3, gap_s=2.5, listen_s=0.1)
    task = asyncio.create_task(simulate([url], [str(ALSA / "Front_Left.wav")], opts))
    control = await Control.open(server, "ev")
    await task
    await control.wait_event("utterance_end")
    kinds = [e["type"] for e in control.events]
    for kind in ("speakers", "speech_start", "speech_stop", "utterance_end"):
        assert kind in kinds
    assert all(e["session"] == "ev" for e in control.events)
    await control.close()


async def test_unknown_session_and_listing(start_bridge):
    server = await start_bridge("echo", secret="k")
    with pytest.raises(InvalidStatus) as info:
        async with connect(f"ws://127.0.0.1:{server.port}/control/nobody"):
            pass
    assert info.value.response.status_code == 401  # a secret guards control too
    base = f"http://127.0.0.1:{server.port}"
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{base}/sessions")).status_code == 401
        token = control_url("", "k", "sessions", 60).split("token=")[1]
        listing = await http.get(f"{base}/sessions?token={token}")
    assert listing.status_code == 200 and listing.json() == []


async def test_cli_say_and_events(start_bridge):
    server = await start_bridge("echo")
    ws = await bot(server, "cli")
    url = f"ws://127.0.0.1:{server.port}"
    events = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge",
        "events",
        "cli",
        "--url",
        url,
        "--count",
        "2",
        stdout=subprocess.PIPE,
    )
    await asyncio.sleep(1.0)  # the events client has subscribed
    say = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge",
        "say",
        "cli",
        "hello",
        "--url",
        url,
        stdout=subprocess.PIPE,
    )
    said, _ = await say.communicate()
    assert say.returncode == 0 and json.loads(said) == {"type": "ok", "command": "say"}
    try:
        printed, _ = await asyncio.wait_for(events.communicate(), 15)
    finally:
        if events.returncode is None:
            events.kill()
            await events.wait()
    kinds = [json.loads(line)["type"] for line in printed.splitlines()]
    assert events.returncode == 0 and kinds == ["bot_text", "utterance_end"]
    await ws.close()


async def test_a_control_client_that_stops_reading_loses_events_not_the_session(start_bridge):
    server = await start_bridge("echo", event_queue_size=5)
    ws = await bot(server, "slow")
    # a control client that never reads: its socket and then its event queue fill up
    silent = await connect(f"ws://127.0.0.1:{server.port}/control/slow", max_queue=1)
    silent.transport.pause_reading()
    session = server.sessions.sessions["slow"]
    speakers = json.dumps([{"name": "A", "id": 1, "timestamp": 1, "isSpeaking": True}])
    for _ in range(3000):  # events far beyond the queue and the socket buffers
        await ws.send(speakers)
    await eventually(lambda: session.events.dropped > 0)
    await ws.send(b"\x00" * 960)
    await eventually(lambda: session.stats.bytes_in == 960)  # the session goes on
    assert session.events.dropped > 0
    assert "event" in session.summary()
    await ws.close()
    await silent.close()
