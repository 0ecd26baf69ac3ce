"""The voice agent against a local fake of the OpenAI API (real HTTP, real wire format)."""

import asyncio
import contextlib
import json

import numpy as np
from websockets.asyncio.client import connect

from bridge.codecs.wav import read_wav
from bridge.sim.simulator import SimulatorOptions, simulate
from tests.fake_openai import API_KEY, FakeOpenAI
from tests.sounds import ALSA

WAVS = [str(ALSA / "Front_Left.wav"), str(ALSA / "Rear_Right.wav")]


def agent_options(api: FakeOpenAI, **extra: str) -> tuple[str, ...]:
    options = {
        "base_url": api.base_url,
        "api_key": API_KEY,
        "chat_model": "test-model",
        "stt": "api",
        "tts": "api",
        **extra,
    }
    return tuple(f"{k}={v}" for k, v in options.items())


async def test_two_turn_conversation_with_context(start_bridge, tmp_path):
    replies = ["It is sunny and warm. Anything else?", "You are welcome."]
    with FakeOpenAI(["what is the weather like", "thank you"], replies) as api:
        server = await start_bridge("agent", agent_options(api))
        url = f"ws://127.0.0.1:{server.port}/bots/agent"
        opts = SimulatorOptions(lead_in_s=0.3, gap_s=3.0, listen_s=0.5)
        report = await simulate([url], WAVS, opts, str(tmp_path / "heard.wav"))
    first, second = api.chats
    assert first["model"] == "test-model" and first["stream"] is True
    assert first["messages"][1:] == [
        {"role": "user", "content": "Simulated Speaker: what is the weather like"}
    ]
    assert second["messages"][1:] == [
        {"role": "user", "content": "Simulated Speaker: what is the weather like"},
        {"role": "assistant", "content": "It is sunny and warm. Anything else?"},
        {"role": "user", "content": "Simulated Speaker: thank you"},
    ]
    assert api.speeches == ["It is sunny and warm.", "Anything else?", "You are welcome."]
    assert len(api.uploads) == 2 and api.unauthorized == 0
    # three sentences of 0.5 s each reached the meeting, each turn after its question
    assert abs(report.bytes_received / 2 / 24000 - 1.5) < 0.05
    for utterance in report.utterances:
        assert utterance.reply_latency_ms is not None and utterance.reply_latency_ms < 1500
    assert report.underruns == 0


async def test_barge_in_stops_the_reply_within_the_lead(start_bridge, tmp_path):
    long_reply = " ".join(f"This is sentence number {n}." for n in range(1, 9))
    with FakeOpenAI(["tell me a story", "stop"], [long_reply, "Okay."], speech_s=1.0) as api:
        server = await start_bridge("agent", agent_options(api), lead_ms=40)
        url = f"ws://127.0.0.1:{server.port}/bots/barge"
        out = tmp_path / "heard.wav"
        opts = SimulatorOptions(lead_in_s=0.3, gap_s=2.5, listen_s=0.5)
        report = await simulate([url], [WAVS[0], WAVS[1]], opts, str(out))
    heard, rate = read_wav(out)
    interrupter = report.utterances[1]
    window = heard[interrupter.start : interrupter.start + rate]
    last_sound = np.flatnonzero(window).max() / rate
    # the bot falls silent within the VAD's start window (200 ms) plus the lead (40 ms)
    assert 0.05 < last_sound < 0.2 + 0.04 + 0.12
    assert len(api.speeches) < 8  # the rest of the story was never synthesized
    second = api.chats[1]["messages"]
    assert second[2]["role"] == "assistant" and second[2]["content"].endswith("[interrupted]")
    assert second[3] == {"role": "user", "content": "Simulated Speaker: stop"}
    assert server.sessions.sessions["barge"].stats.barge_ins == 1


async def test_stt_meetingbaas_answers_the_bots_own_transcripts(start_bridge):
    """Transcription mode: the bot streams transcript events on its output socket and still
    plays what it gets on its input socket; the agent answers the final segments."""
    with FakeOpenAI([], ["Hello Alice."]) as api:
        server = await start_bridge("agent", agent_options(api, stt="meetingbaas"))
        base = f"ws://127.0.0.1:{server.port}/bots/mbstt"
        async with connect(f"{base}/output") as output, connect(f"{base}/input") as playback:
            await output.send(json.dumps({"event": "session.started", "data": {}}))
            for text, final in (("hel", False), ("hello there", True)):
                data = {"text": text, "isFinal": final, "speaker": {"name": "Alice", "id": 1}}
                await output.send(json.dumps({"event": "transcript.segment", "data": data}))
            heard = 0
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(3):
                    while True:
                        heard += len(await playback.recv())
    (chat,) = api.chats
    assert chat["messages"][1:] == [{"role": "user", "content": "Alice: hello there"}]
    assert api.uploads == [] and api.speeches == ["Hello Alice."]
    assert abs(heard / 2 / 24000 - 0.5) < 0.05  # the fake's 0.5 s of speech, played
