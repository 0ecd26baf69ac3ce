import json

import numpy as np
import pytest

from bridge.wire.protocol import (
    BotEvent,
    Hello,
    ProtocolError,
    Route,
    RouteError,
    SpeakerUpdate,
    TranscriptSegment,
    parse_audio,
    parse_route,
    parse_text,
)


@pytest.mark.parametrize(
    ("target", "route"),
    [
        ("/bots/abc", Route("abc", "dual", None)),
        ("/bots/abc/", Route("abc", "dual", None)),
        ("/bots/abc/output?rate=16000", Route("abc", "output", 16000)),
        ("/bots/a-b_c.1/input?rate=24000&x=1", Route("a-b_c.1", "input", 24000)),
        ("/bots/abc?rate=32000", Route("abc", "dual", 32000)),
        ("/bots/abc?rate=48000", Route("abc", "dual", 48000)),
    ],
)
def test_routes(target, route):
    assert parse_route(target) == route


@pytest.mark.parametrize(
    ("target", "status"),
    [
        ("/", 404),
        ("/bots", 404),
        ("/bot/abc", 404),
        ("/bots/abc/speaker", 404),
        ("/bots/abc/output/x", 404),
        ("/bots/-abc", 400),
        ("/bots/" + "a" * 129, 400),
        ("/bots/abc?rate=44100", 400),
        ("/bots/abc?rate=fast", 400),
    ],
)
def test_bad_routes(target, status):
    with pytest.raises(RouteError) as info:
        parse_route(target)
    assert info.value.status == status


def test_hello():
    message = parse_text('{"protocol_version": 1, "bot_id": "b-1", "offset": 0.0}')
    assert message == Hello(protocol_version=1, bot_id="b-1", offset=0.0)


def test_speaker_states():
    text = json.dumps(
        [
            {"name": "Alice", "id": 2, "timestamp": 1732467000123, "isSpeaking": True},
            {"name": "Bob", "id": 3, "timestamp": 1732467000124, "isSpeaking": False},
        ]
    )
    message = parse_text(text)
    assert isinstance(message, SpeakerUpdate)
    assert [(s.name, s.id, s.is_speaking) for s in message.speakers] == [
        ("Alice", 2, True),
        ("Bob", 3, False),
    ]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("hello", "invalid_json"),
        ("{", "invalid_json"),
        ("42", "unknown_message"),
        ('"text"', "unknown_message"),
        ('{"protocol_version": "one", "bot_id": "b"}', "invalid_message"),
        ('{"bot_id": "b"}', "invalid_message"),
        ('[{"name": "A", "id": "x", "timestamp": 1, "isSpeaking": true}]', "invalid_message"),
        ('[{"name": "A"}]', "invalid_message"),
        ('{"protocol_version": 1, "bot_id": "b", "sample_rate": 44100}', "invalid_message"),
        ('{"event": 5}', "invalid_message"),
        ('{"event": "transcript.segment", "data": []}', "invalid_message"),
    ],
)
def test_bad_text(text, reason):
    with pytest.raises(ProtocolError) as info:
        parse_text(text)
    assert info.value.reason == reason


def test_audio_is_viewed_as_s16le():
    samples = parse_audio(np.array([1, -2, 32767], dtype="<i2").tobytes())
    assert samples.tolist() == [1, -2, 32767]
    with pytest.raises(ProtocolError, match="odd_length"):
        parse_audio(b"\x00\x01\x02")


@pytest.mark.parametrize("rate", [16000, 24000, 32000, 48000])
def test_a_hello_may_name_its_rate(rate):
    text = json.dumps({"protocol_version": 2, "bot_id": "b", "offset": 0.0, "sample_rate": rate})
    hello = parse_text(text)
    assert isinstance(hello, Hello) and hello.sample_rate == rate


def test_gen1_hello_has_no_rate_and_a_numeric_bot_id_is_a_string():
    hello = parse_text('{"protocol_version": 1, "bot_id": 1234, "offset": 0.0}')
    assert isinstance(hello, Hello) and hello.sample_rate is None and hello.bot_id == "1234"


def test_v2_roster_null_id_seconds_timestamp_and_device_id():
    text = json.dumps(
        [
            {
                "name": "Ann",
                "id": None,
                "timestamp": 1709654321.5,
                "isSpeaking": True,
                "deviceId": "dev-1",
                "extraField": 7,
            },
        ]
    )
    message = parse_text(text)
    assert isinstance(message, SpeakerUpdate)
    (ann,) = message.speakers
    assert ann.id is None and ann.device_id == "dev-1" and ann.is_speaking
    assert ann.timestamp_ms == 1709654321500.0
    assert ann.model_extra == {"extraField": 7}


def test_gen1_roster_timestamp_in_ms_stays_ms():
    message = parse_text('[{"name": "A", "id": 0, "timestamp": 1732467000123, "isSpeaking": true}]')
    assert isinstance(message, SpeakerUpdate)
    assert message.speakers[0].timestamp_ms == 1732467000123


def test_transcription_events_parse_with_every_field_optional():
    event = parse_text(
        json.dumps({"event": "transcript.segment", "bot_id": "b", "data": {"text": "hi"}})
    )
    assert isinstance(event, BotEvent) and event.event == "transcript.segment"
    segment = TranscriptSegment.model_validate(event.data)
    assert segment.text == "hi" and segment.is_final and segment.speaker_label is None
    other = TranscriptSegment.model_validate(
        {"text": "yo", "is_final": False, "start": 1.5, "speaker_name": "Ann"}
    )
    assert not other.is_final and other.start == 1.5 and other.speaker_label == "Ann"
    full = TranscriptSegment.model_validate(
        {
            "text": "a",
            "isFinal": True,
            "utteranceStart": 2.0,
            "utteranceEnd": 3.5,
            "speaker": {"name": "Bo", "id": 4},
        }
    )
    assert (full.start, full.end, full.speaker_label) == (2.0, 3.5, "Bo")
    started = parse_text('{"event": "session.started"}')
    assert isinstance(started, BotEvent) and started.data == {}
