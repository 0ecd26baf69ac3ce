import json

import numpy as np
import pytest

from bridge.wire.protocol import (
    SUPPORTED_RATES,
    Hello,
    ProtocolError,
    Route,
    RouteError,
    SpeakerUpdate,
    parse_audio,
    parse_control_route,
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
        ("/bots/abc?rate=%2B24000", 400),  # +24000
        ("/bots/abc?rate=+24000", 400),  # a space, once unquoted
        ("/bots/abc?rate=24_000", 400),
        ("/bots/abc?rate=%D9%A2%D9%A4%D9%A0%D9%A0%D9%A0", 400),  # Arabic-Indic 24000
        ("/bots/abc?rate=024000", 400),
        ("/bots/abc?rate=", 400),
        ("/bots/abc?rate=16000&rate=24000", 400),
        ("/bots/abc?token=a&token=b", 400),
        ("/bots/abc?rate=" + "9" * 5000, 400),
    ],
)
def test_bad_routes(target, status):
    with pytest.raises(RouteError) as info:
        parse_route(target)
    assert info.value.status == status


@pytest.mark.parametrize("rate", SUPPORTED_RATES)
def test_every_supported_rate_is_admitted(rate):
    assert parse_route(f"/bots/abc?rate={rate}").sample_rate == rate


def test_a_control_url_with_two_tokens_is_refused():
    with pytest.raises(RouteError, match="token parameter is given 2 times") as info:
        parse_control_route("/control/abc?token=a&token=b")
    assert info.value.status == 400
    assert parse_control_route("/control/abc?token=a") == ("abc", "a")


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
