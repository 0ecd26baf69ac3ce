"""The realtime responder against a local fake Realtime server (real WebSocket, real events),
through the real bridge, with the simulated bot speaking the ALSA recordings."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from bridge.audio.resample import StreamResampler
from bridge.codecs.wav import read_wav, write_wav
from bridge.sim.simulator import SimulatorOptions, best_alignment, simulate
from tests.fake_realtime import API_KEY, RATE, FakeRealtime
from tests.helpers import Control, eventually, join_call
from tests.sounds import ALSA, recording

NAMES = ["Front_Left", "Rear_Right"]
WAVS = [str(ALSA / f"{name}.wav") for name in NAMES]
HELLO = json.dumps({"protocol_version": 1, "bot_id": "bot-1", "offset": 0.0})
FRAME_MS = 20


def realtime_options(api: FakeRealtime, **extra: object) -> tuple[str, ...]:
    options = {"base_url": api.base_url, "api_key": API_KEY, "model": "test-model", **extra}
    return tuple(f"realtime.{k}={v}" for k, v in options.items())


def timeline(folder: Path) -> list[dict]:
    (session,) = folder.iterdir()
    return [json.loads(line) for line in (session / "timeline.jsonl").read_text().splitlines()]


def as_heard_by_the_model(name: str, bot_rate: int) -> np.ndarray:
    """A recording as the bot sends it (at bot_rate), resampled to the model's 24 kHz."""
    resampler = StreamResampler(bot_rate, RATE)
    samples = recording(name, bot_rate)
    return np.concatenate([resampler.process(samples), resampler.flush()])


def peak_hz(samples: np.ndarray, rate: int) -> float:
    return float(np.argmax(np.abs(np.fft.rfft(samples.astype(float)))) * rate / len(samples))


def heard_replies(path: Path) -> list[np.ndarray]:
    """The stretches of sound the meeting heard from the bot, split at silences of 250 ms
    (shorter gaps are the simulator's own stalls on a loaded host, not a new reply)."""
    heard, rate = read_wav(path)
    loud = np.flatnonzero(heard)
    breaks = np.flatnonzero(np.diff(loud) > rate // 4) + 1
    return [heard[run[0] : run[-1] + 1] for run in np.split(loud, breaks)]


async def metric(server, name: str) -> float:
    async with httpx.AsyncClient() as http:
        page = await http.get(f"http://127.0.0.1:{server.port}/metrics")
    for family in text_string_to_metric_families(page.text):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    raise AssertionError(f"no metric {name}")


async def test_two_turn_conversation(start_bridge, tmp_path):
    replies = [("It is sunny.", 1.0), ("You are welcome.", 0.8)]
    async with FakeRealtime(replies, ["what is the weather like", "thank you"]) as api:
        options = (*realtime_options(api), f"recorder.dir={tmp_path / 'rec'}")
        server = await start_bridge("realtime,recorder", options)
        url = f"ws://127.0.0.1:{server.port}/bots/talk"
        opts = SimulatorOptions(sample_rate=16000, lead_in_s=0.3, gap_s=3.0, listen_s=0.5)
        report = await simulate([url], WAVS, opts, str(tmp_path / "heard.wav"))
    assert api.errors == [] and api.models == ["test-model"]
    (conv,) = api.conversations
    update = conv.events[0]
    assert update["type"] == "session.update"
    audio = update["session"]["audio"]
    pcm = {"type": "audio/pcm", "rate": RATE}
    assert audio["input"]["format"] == audio["output"]["format"] == pcm
    assert audio["input"]["turn_detection"] is None  # the bridge ends turns
    assert audio["output"]["voice"] == "alloy"
    # the speaker is named before the first turn is committed, once (the same speaker after)
    kinds = [e["type"] for e in conv.events if e["type"] != "input_audio_buffer.append"]
    assert kinds == [
        "session.update",
        "conversation.item.create",
        "input_audio_buffer.commit",
        "response.create",
        "input_audio_buffer.commit",
        "response.create",
    ]
    context = conv.of_type("conversation.item.create")[0]["item"]
    assert context["role"] == "system"
    assert "Now speaking: Simulated Speaker" in context["content"][0]["text"]
    # each turn the model got is the recording, at 24 kHz (resampled from the bot's 16 kHz)
    turns = conv.user_turns()
    assert len(turns) == 2
    for name, turn in zip(NAMES, turns, strict=True):
        reference = as_heard_by_the_model(name, 16000)
        _, correlation = best_alignment(reference, turn.pcm())
        assert correlation is not None and correlation > 0.95
    # only speech went (with its preroll and the VAD's tail), not the silence between
    assert conv.appended < 0.75 * report.bytes_sent / 2 * RATE / 16000
    # both replies reached the meeting, whole, in order, each after its question
    assert abs(report.bytes_received / 2 / 16000 - 1.8) < 0.02
    first, second = heard_replies(tmp_path / "heard.wav")
    assert abs(peak_hz(first, 16000) - 400) < 5 and abs(peak_hz(second, 16000) - 500) < 5
    for utterance in report.utterances:
        assert utterance.reply_latency_ms is not None and utterance.reply_latency_ms < 1500
    assert report.underruns == 0
    # transcripts of both sides, in the recorder's timeline
    transcripts = [
        (e["role"], e["speaker"], e["text"])
        for e in timeline(tmp_path / "rec")
        if e["type"] == "transcript"
    ]
    assert transcripts == [
        ("user", "Simulated Speaker", "what is the weather like"),
        ("assistant", "bot", "It is sunny."),
        ("user", "Simulated Speaker", "thank you"),
        ("assistant", "bot", "You are welcome."),
    ]


async def test_server_vad_turns_in_the_beta_dialect(start_bridge, tmp_path):
    replies = [("Hello there.", 0.6), ("Goodbye.", 0.5)]
    async with FakeRealtime(replies, ["hello", "bye"], dialect="beta") as api:
        options = realtime_options(
            api, turn_detection="server_vad", dialect="beta", vad_silence_ms=800
        )
        server = await start_bridge("realtime", options)
        url = f"ws://127.0.0.1:{server.port}/bots/vad"
        opts = SimulatorOptions(lead_in_s=0.3, gap_s=2.5, listen_s=0.5)
        report = await simulate([url], WAVS, opts, str(tmp_path / "heard.wav"))
    assert api.errors == []
    (conv,) = api.conversations
    session = conv.events[0]["session"]
    assert session["input_audio_format"] == session["output_audio_format"] == "pcm16"
    vad = session["turn_detection"]
    assert vad["type"] == "server_vad" and vad["silence_duration_ms"] == 800
    assert vad["create_response"] is True and vad["interrupt_response"] is True
    # the model ends the turns: the bridge never commits nor asks for a response
    assert not conv.of_type("input_audio_buffer.commit") and not conv.of_type("response.create")
    # the whole meeting streams, at 24 kHz in real time (the bot's start burst aside)
    assert abs(conv.append_rate() / RATE - 1) < 0.1
    assert abs(conv.appended - report.bytes_sent / 2) < RATE * 0.1
    assert api.responses == 2
    assert abs(report.bytes_received / 2 / 24000 - 1.1) < 0.02
    first, second = heard_replies(tmp_path / "heard.wav")
    assert abs(peak_hz(first, 24000) - 400) < 5 and abs(peak_hz(second, 24000) - 500) < 5


async def test_barge_in_truncates_the_reply_where_the_meeting_stopped_hearing_it(
    start_bridge, tmp_path
):
    replies = [("Once upon a time, there was a long story.", 6.0), ("Okay.", 0.5)]
    # streamed at 1.5x real time: the reply is still being made when the meeting cuts it
    async with FakeRealtime(replies, ["tell me a story", "stop"], pace=1.5) as api:
        options = (*realtime_options(api), f"recorder.dir={tmp_path / 'rec'}")
        server = await start_bridge("realtime,recorder", options, lead_ms=40)
        url = f"ws://127.0.0.1:{server.port}/bots/barge"
        opts = SimulatorOptions(sample_rate=16000, lead_in_s=0.3, gap_s=1.5, listen_s=2.0)
        report = await simulate([url], WAVS, opts, str(tmp_path / "heard.wav"))
    print(report)  # shown if the test fails
    assert api.errors == []
    (conv,) = api.conversations
    kinds = [e["type"] for e in conv.events if e["type"] != "input_audio_buffer.append"]
    print(kinds, conv.truncates)
    # the cut: cancel what is being made, truncate what was said; then the next turn
    cancel_at = kinds.index("response.cancel")
    assert kinds[cancel_at + 1] == "conversation.item.truncate"
    assert kinds[cancel_at + 2 :] == ["input_audio_buffer.commit", "response.create"]
    (truncate,) = conv.truncates
    story = next(i for i in conv.items.values() if i.role == "assistant")
    assert truncate["item_id"] == story.id and truncate["content_index"] == 0
    # what the meeting heard of the story: all it heard, less the whole second reply
    heard_ms = report.bytes_received / 2 / 16000 * 1000 - 500
    assert abs(truncate["audio_end_ms"] - heard_ms) <= FRAME_MS
    assert 500 < heard_ms < truncate["sent_ms"] < 6000  # cut short, with more sent than heard
    assert server.sessions.sessions["barge"].stats.barge_ins == 1
    cut = [e for e in timeline(tmp_path / "rec") if e["type"] == "reply_interrupted"]
    assert [e["item_id"] for e in cut] == [story.id]
    assert abs(cut[0]["heard_ms"] - heard_ms) <= FRAME_MS
    first, second = heard_replies(tmp_path / "heard.wav")
    assert abs(peak_hz(first, 16000) - 400) < 5 and abs(peak_hz(second, 16000) - 500) < 5


async def test_the_model_disconnects_and_the_bridge_reconnects_with_the_conversation(
    start_bridge, tmp_path
):
    replies = [("It is sunny.", 0.6), ("You are welcome.", 0.5)]
    transcripts = ["what is the weather like", "thank you"]
    async with FakeRealtime(replies, transcripts, close_after_responses=1) as api:
        options = (*realtime_options(api), f"recorder.dir={tmp_path / 'rec'}")
        server = await start_bridge("realtime,recorder", options)
        url = f"ws://127.0.0.1:{server.port}/bots/again"
        opts = SimulatorOptions(lead_in_s=0.3, gap_s=3.0, listen_s=0.5)
        report = await simulate([url], WAVS, opts, str(tmp_path / "heard.wav"))
    assert api.errors == []
    first, second = api.conversations
    assert len(first.user_turns()) == 1 and len(second.user_turns()) == 1
    # the new connection is configured again, and told what was said before the loss
    assert second.events[0]["type"] == "session.update"
    replayed = [
        (e["item"]["role"], e["item"]["content"][0]["type"], e["item"]["content"][0]["text"])
        for e in second.of_type("conversation.item.create")
    ]
    assert replayed[:2] == [
        ("user", "input_text", "Simulated Speaker: what is the weather like"),
        ("assistant", "output_text", "It is sunny."),
    ]
    assert "Simulated Speaker" in replayed[2][2]  # who speaks now
    assert api.responses == 2
    assert abs(report.bytes_received / 2 / 24000 - 1.1) < 0.02
    events = [e for e in timeline(tmp_path / "rec") if e["type"].startswith("realtime_")]
    assert [e["type"] for e in events][:3] == [
        "realtime_connected",
        "realtime_disconnected",
        "realtime_connected",
    ]
    assert events[1]["retry_in_s"] is not None and events[2]["replayed"] == 2


async def test_a_slow_model_keeps_the_session_live_until_it_answers(start_bridge, tmp_path):
    async with FakeRealtime([("Sorry for the wait.", 0.5)], response_delay_s=3.0) as api:
        server = await start_bridge("realtime", realtime_options(api))
        url = f"ws://127.0.0.1:{server.port}/bots/slow"
        opts = SimulatorOptions(lead_in_s=0.3, gap_s=4.5, listen_s=0.5)
        sim = asyncio.create_task(simulate([url], WAVS[:1], opts, str(tmp_path / "heard.wav")))
        conv = await eventually(lambda: api.conversations and api.conversations[0])
        await eventually(lambda: conv.of_type("response.create"))
        await asyncio.sleep(1.5)  # the model is thinking
        assert await metric(server, "speakbridge_sessions_active") == 1
        assert await metric(server, "speakbridge_sockets") == 1
        assert api.responses == 0
        report = await sim
    assert api.errors == [] and api.responses == 1
    assert report.close_code == 1000  # the bot closed at its end: the bridge never dropped it
    (utterance,) = report.utterances
    assert utterance.reply_latency_ms is not None and utterance.reply_latency_ms > 3000
    assert abs(report.bytes_received / 2 / 24000 - 0.5) < 0.02


async def test_say_makes_the_model_speak_the_text(start_bridge):
    async with FakeRealtime([("Welcome, everyone.", 0.4)]) as api:
        server = await start_bridge("realtime", realtime_options(api))
        async with connect(f"ws://127.0.0.1:{server.port}/bots/say") as bot:
            await join_call(bot, HELLO)
            control = await Control.open(server, "say")
            await eventually(lambda: api.conversations and api.conversations[0].session)
            reply = await control.command({"type": "say", "text": "Welcome, everyone."})
            assert reply == {"type": "ok", "command": "say"}
            received = 0
            async with asyncio.timeout(5):
                while received < 0.4 * 24000 * 2:
                    received += len(await bot.recv())
            await control.close()
    (conv,) = api.conversations
    (create,) = conv.of_type("response.create")
    assert "Welcome, everyone." in create["response"]["instructions"]
    assert received == 0.4 * 24000 * 2 and api.errors == []


async def test_a_refused_key_is_not_retried_and_the_session_goes_on(start_bridge, caplog, tmp_path):
    async with FakeRealtime([]) as api:
        options = (*realtime_options(api, api_key="sk-wrong"), f"recorder.dir={tmp_path}")
        server = await start_bridge("realtime,recorder", options)
        async with connect(f"ws://127.0.0.1:{server.port}/bots/key") as bot:
            await join_call(bot, HELLO)
            await eventually(lambda: api.refused)
            await bot.send(np.zeros(480, "<i2").tobytes())
            await asyncio.sleep(1.0)  # more than the first backoff
            assert "key" in server.sessions.sessions
    assert api.refused == [401] and api.conversations == []
    (down,) = [e for e in timeline(tmp_path) if e["type"] == "realtime_disconnected"]
    assert "HTTP 401" in down["reason"] and down["retry_in_s"] is None
    assert sum("HTTP 401" in r.getMessage() for r in caplog.records) == 1


async def test_reply_audio_beyond_the_reply_buffer_is_dropped_and_counted(start_bridge, tmp_path):
    # six seconds of reply in 60 ms: the playout takes 3 s (playback_buffer_s), the reply
    # buffer 1 s more; the rest is dropped, counted and logged, not held without bound
    async with FakeRealtime([("A very long answer.", 6.0)], pace=100) as api:
        server = await start_bridge("realtime", realtime_options(api, reply_buffer_s=1))
        url = f"ws://127.0.0.1:{server.port}/bots/flood"
        opts = SimulatorOptions(lead_in_s=0.3, gap_s=5.0, listen_s=0.5)
        report = await simulate([url], WAVS[:1], opts, str(tmp_path / "heard.wav"))
        session = server.sessions.sessions["flood"]
        assert session.stats.dropped["realtime_reply_buffer_full"] >= 1
    assert api.errors == []
    heard_s = report.bytes_received / 2 / 24000
    assert 3.9 < heard_s < 4.6
    assert report.underruns == 0


async def test_a_control_interrupt_truncates_the_reply_said_at_what_the_bot_got(start_bridge):
    async with FakeRealtime([("This is a long welcome speech.", 4.0)], pace=1.5) as api:
        server = await start_bridge("realtime", realtime_options(api))
        async with connect(f"ws://127.0.0.1:{server.port}/bots/cut") as bot:
            await join_call(bot, HELLO)
            control = await Control.open(server, "cut")
            await eventually(lambda: api.conversations and api.conversations[0].session)
            await control.command({"type": "say", "text": "This is a long welcome speech."})
            received = 0
            async with asyncio.timeout(5):
                while received < 24000 * 2:  # a second of it
                    received += len(await bot.recv())
            assert await control.command({"type": "interrupt"}) == {
                "type": "ok",
                "command": "interrupt",
            }
            await control.wait_event("reply_interrupted")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):  # the lead already sent still arrives
                    while True:
                        received += len(await bot.recv())
            await control.close()
    (conv,) = api.conversations
    assert [e["type"] for e in conv.events][-2:] == [
        "response.cancel",
        "conversation.item.truncate",
    ]
    (truncate,) = conv.truncates
    assert abs(truncate["audio_end_ms"] - received / 2 / 24) <= FRAME_MS
    assert api.errors == [] and api.cancelled == 1


async def test_a_busy_model_is_retried_with_growing_backoff(start_bridge, tmp_path):
    async with FakeRealtime([], refuse_first=(503, 429)) as api:
        options = (*realtime_options(api), f"recorder.dir={tmp_path}")
        server = await start_bridge("realtime,recorder", options)
        async with connect(f"ws://127.0.0.1:{server.port}/bots/busy") as bot:
            await join_call(bot, HELLO)
            await eventually(lambda: api.conversations and api.conversations[0].session)
    assert api.refused == [503, 429] and len(api.conversations) == 1 and api.errors == []
    await eventually(lambda: any(e["type"] == "realtime_connected" for e in timeline(tmp_path)))
    first, second = [e for e in timeline(tmp_path) if e["type"] == "realtime_disconnected"][:2]
    assert "HTTP 503" in first["reason"] and "HTTP 429" in second["reason"]
    assert 0.25 <= first["retry_in_s"] <= 0.5 <= second["retry_in_s"] <= 1.0  # doubled


async def test_the_models_own_vad_cut_is_truncated_where_the_meeting_stopped_hearing(
    start_bridge, tmp_path
):
    replies = [("Once upon a time, there was a long story.", 6.0), ("Okay.", 0.5)]
    async with FakeRealtime(replies, pace=1.5) as api:
        options = realtime_options(api, turn_detection="server_vad", vad_silence_ms=800)
        server = await start_bridge("realtime", options, lead_ms=40)
        url = f"ws://127.0.0.1:{server.port}/bots/vadcut"
        opts = SimulatorOptions(lead_in_s=0.3, gap_s=1.5, listen_s=2.0)
        report = await simulate([url], WAVS, opts, str(tmp_path / "heard.wav"))
    print(report)
    assert api.errors == []
    (conv,) = api.conversations
    # the model cut its reply itself when it heard speech: the bridge sends no cancel, only
    # the truncate of what the meeting heard
    assert not conv.of_type("response.cancel") and api.cancelled == 1
    (truncate,) = conv.truncates
    heard_ms = report.bytes_received / 2 / 24000 * 1000 - 500
    assert abs(truncate["audio_end_ms"] - heard_ms) <= FRAME_MS
    assert 500 < heard_ms < truncate["sent_ms"]


async def test_a_turn_resumed_after_its_commit_cuts_the_reply_and_goes_on_as_one_turn(
    start_bridge, tmp_path
):
    """ "Front left", 0.95 s of quiet (longer than a fresh speaker's 750 ms delay: the turn is
    committed and the model starts answering), then "rear right": the turn continues, the
    reply is cut where the meeting stopped hearing it, and the rest is committed and answered."""
    pause = np.zeros(int(0.95 * 16000), np.int16)
    wav = tmp_path / "resumed.wav"
    write_wav(
        wav, np.concatenate([recording(NAMES[0], 16000), pause, recording(NAMES[1], 16000)]), 16000
    )
    replies = [("Yes, go on.", 3.0), ("Okay.", 0.5)]
    async with FakeRealtime(replies, ["front left", "rear right"], pace=1.5) as api:
        server = await start_bridge("realtime", realtime_options(api), lead_ms=40)
        url = f"ws://127.0.0.1:{server.port}/bots/resumed"
        opts = SimulatorOptions(sample_rate=16000, lead_in_s=0.3, gap_s=2.0, listen_s=1.0)
        await simulate([url], [str(wav)], opts, str(tmp_path / "heard.wav"))
    assert api.errors == []
    session = server.sessions.sessions["resumed"]
    assert session.floor.turns_started == 1 and session.floor.turns_continued == 1
    (conv,) = api.conversations
    kinds = [e["type"] for e in conv.events if e["type"] != "input_audio_buffer.append"]
    commits = [i for i, kind in enumerate(kinds) if kind == "input_audio_buffer.commit"]
    assert len(commits) == 2  # the half turn, then the rest of it
    assert kinds[commits[0] + 1] == "response.create"
    assert "conversation.item.truncate" in kinds[commits[0] : commits[1]]  # the reply, cut
    assert kinds[commits[1] :] == ["input_audio_buffer.commit", "response.create"]
    first, second = conv.user_turns()
    for name, turn in zip(NAMES, (first, second), strict=True):
        _, correlation = best_alignment(as_heard_by_the_model(name, 16000), turn.pcm())
        assert correlation is not None and correlation > 0.9
