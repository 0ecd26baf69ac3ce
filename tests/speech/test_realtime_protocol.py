"""The Realtime protocol, sans I/O: events built field by field, server events parsed (both
namings), and the ledger's decisions on a cut."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from bridge.speech.realtime_protocol import (
    REALTIME_RATE,
    AudioDelta,
    AudioDone,
    InputCommitted,
    RealtimeProtocolError,
    ReplyLedger,
    ResponseDone,
    ResponseStarted,
    ServerError,
    SessionConfig,
    SpeechBegan,
    Transcript,
    append_audio,
    create_response,
    parse_server_event,
    realtime_url,
    session_update,
    text_item,
)
from tests.sounds import recording


def server(kind: str, **fields: object) -> str:
    return json.dumps({"event_id": "event_1", "type": kind, **fields})


def delta(response: str, item: str, samples: int) -> AudioDelta:
    return AudioDelta(response, item, 0, np.zeros(samples, np.int16))


def test_realtime_url_from_the_api_base_url():
    assert realtime_url("https://api.openai.com/v1", "gpt-realtime") == (
        "wss://api.openai.com/v1/realtime?model=gpt-realtime"
    )
    assert (
        realtime_url("http://127.0.0.1:9/v1/", "a b") == "ws://127.0.0.1:9/v1/realtime?model=a%20b"
    )
    assert realtime_url("wss://proxy/v1/realtime", "m") == "wss://proxy/v1/realtime?model=m"
    with pytest.raises(ValueError, match="http"):
        realtime_url("ftp://host/v1", "m")


def test_ga_session_update_asks_for_pcm16_at_24k_both_ways():
    config = SessionConfig("verse", "Be brief.", server_vad=True, transcription_model="whisper-1")
    session = session_update(config)["session"]
    pcm = {"type": "audio/pcm", "rate": 24000}
    assert session["type"] == "realtime" and session["output_modalities"] == ["audio"]
    assert session["instructions"] == "Be brief."
    assert session["audio"]["input"]["format"] == session["audio"]["output"]["format"] == pcm
    assert session["audio"]["output"]["voice"] == "verse"
    assert session["audio"]["input"]["transcription"] == {"model": "whisper-1"}
    vad = session["audio"]["input"]["turn_detection"]
    assert vad == {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 500,
        "create_response": True,
        "interrupt_response": True,
    }


def test_beta_session_update_and_bridge_turns():
    config = SessionConfig("alloy", "Hi.", server_vad=False, dialect="beta")
    session = session_update(config)["session"]
    assert session["input_audio_format"] == session["output_audio_format"] == "pcm16"
    assert session["voice"] == "alloy" and "audio" in session["modalities"]
    assert session["turn_detection"] is None  # the bridge commits turns itself
    assert session["input_audio_transcription"] is None


def test_append_is_base64_of_little_endian_pcm16():
    samples = recording("Front_Left", REALTIME_RATE)[:480]
    event = append_audio(samples)
    assert event["type"] == "input_audio_buffer.append"
    raw = base64.b64decode(event["audio"], validate=True)
    assert len(raw) == 960
    assert np.array_equal(np.frombuffer(raw, dtype="<i2"), samples)


def test_text_items_and_response_create():
    assert text_item("system", "Now speaking: Ann.")["item"] == {
        "type": "message",
        "role": "system",
        "content": [{"type": "input_text", "text": "Now speaking: Ann."}],
    }
    assert text_item("assistant", "Hi.")["item"]["content"][0]["type"] == "output_text"
    assert text_item("assistant", "Hi.", "beta")["item"]["content"][0]["type"] == "text"
    assert create_response("r1") == {"type": "response.create", "event_id": "r1"}
    assert create_response("r2", "Say hi.")["response"] == {"instructions": "Say hi."}


@pytest.mark.parametrize("name", ["response.output_audio.delta", "response.audio.delta"])
def test_audio_deltas_of_either_naming(name):
    pcm = np.arange(-5, 5, dtype="<i2")
    event = parse_server_event(
        server(
            name,
            response_id="resp_1",
            item_id="item_1",
            output_index=0,
            content_index=0,
            delta=base64.b64encode(pcm.tobytes()).decode(),
        )
    )
    assert isinstance(event, AudioDelta) and (event.response_id, event.item_id) == (
        "resp_1",
        "item_1",
    )
    assert np.array_equal(event.audio, pcm)


def test_server_events_the_bridge_acts_on():
    assert parse_server_event(
        server("response.output_audio_transcript.done", item_id="i", transcript="Hi.")
    ) == Transcript("assistant", "i", "Hi.")
    assert parse_server_event(
        server("response.audio_transcript.done", item_id="i", transcript="Hi.")
    ) == Transcript("assistant", "i", "Hi.")
    assert parse_server_event(
        server(
            "conversation.item.input_audio_transcription.completed",
            item_id="u",
            content_index=0,
            transcript="hello",
        )
    ) == Transcript("user", "u", "hello")
    assert parse_server_event(server("response.created", response={"id": "r"})) == (
        ResponseStarted("r")
    )
    done = server("response.done", response={"id": "r", "status": "cancelled"})
    assert parse_server_event(done) == ResponseDone("r", "cancelled")
    assert parse_server_event(
        server("response.output_audio.done", response_id="r", item_id="i")
    ) == AudioDone("r", "i")
    assert parse_server_event(server("input_audio_buffer.committed", item_id="u")) == (
        InputCommitted("u")
    )
    began = server("input_audio_buffer.speech_started", audio_start_ms=120, item_id="u")
    assert parse_server_event(began) == SpeechBegan(120, "u")
    error = server(
        "error",
        error={"type": "invalid_request_error", "code": "bad", "message": "no", "event_id": "e"},
    )
    assert parse_server_event(error) == ServerError("invalid_request_error", "bad", "no", "e")
    assert parse_server_event(server("rate_limits.updated", rate_limits=[])) is None


@pytest.mark.parametrize(
    ("message", "says"),
    [
        (b"\x00", "binary"),
        ("{nope", "not JSON"),
        ("[1]", "JSON object"),
        (server("response.created"), "response.created: missing"),
        (
            server("response.audio.delta", response_id="r", item_id="i", delta="AAAA"),
            "whole 16-bit",
        ),
        (server("response.audio.delta", response_id="r", item_id="i", delta="$$"), "base64"),
    ],
)
def test_malformed_server_events_are_refused_with_a_reason(message, says):
    with pytest.raises(RealtimeProtocolError, match=says):
        parse_server_event(message)


def test_ledger_cancels_a_live_response_once_and_ignores_its_late_audio():
    ledger = ReplyLedger()
    ledger.request("e1")
    assert ledger.busy
    assert ledger.started("r1") == []
    assert ledger.audio(delta("r1", "i1", 2400))
    assert ledger.cancel() == [{"type": "response.cancel"}]
    assert ledger.cancel() == []  # once
    assert not ledger.audio(delta("r1", "i1", 2400))  # in flight when cancelled: not played
    assert ledger.busy  # until its response.done: no response.create before it
    ledger.done("r1")
    assert not ledger.busy


def test_ledger_cancels_a_response_asked_for_as_soon_as_it_starts():
    ledger = ReplyLedger()
    ledger.request("e1")
    assert ledger.cancel() == []  # nothing to cancel yet: the model takes no cancel now
    assert ledger.started("r1") == [{"type": "response.cancel"}]


def test_ledger_truncates_at_what_was_heard_never_past_what_was_sent():
    ledger = ReplyLedger()
    ledger.started("r1")
    ledger.audio(delta("r1", "i1", 24000))  # 1000 ms sent
    assert ledger.truncate("i1", 612.4) == [
        {
            "type": "conversation.item.truncate",
            "item_id": "i1",
            "content_index": 0,
            "audio_end_ms": 612,
        }
    ]
    assert ledger.truncate("i1", 700) == []  # once per item
    assert not ledger.audio(delta("r1", "i1", 100))  # the cut item plays no more
    ledger.audio(delta("r1", "i2", 2400))  # 100 ms sent
    assert ledger.truncate("i2", 140)[0]["audio_end_ms"] == 100
    ledger.done("r1")
    assert ledger.items == {}  # cut items are let go with their response
    assert ledger.truncate("unknown", 10) == []


def test_ledger_forgets_a_refused_request_and_resets_on_a_new_connection():
    ledger = ReplyLedger()
    ledger.request("e1")
    ledger.refused("other")
    assert ledger.busy
    ledger.refused("e1")
    assert not ledger.busy
    ledger.started("r1")
    ledger.audio(delta("r1", "i1", 10))
    ledger.reset()
    assert not ledger.busy and ledger.items == {}
