"""The Meeting BaaS client against a real local HTTP server that checks requests as documented."""

import logging
import time

import pytest
from pydantic import ValidationError

from bridge.meetingbaas.client import ApiError, BotSpec, MeetingBaasClient
from tests.fake_meetingbaas import API_KEY, FakeMeetingBaas, Scripted

URLS = {
    "output_url": "wss://bridge.example/bots/s1/output?rate=16000&token=1.ab",
    "input_url": "wss://bridge.example/bots/s1/input?rate=16000&token=1.cd",
}


@pytest.fixture
def api():
    with FakeMeetingBaas() as fake:
        yield fake


def client(api: FakeMeetingBaas, version: str = "v2", **kw) -> MeetingBaasClient:
    kw.setdefault("backoff_s", 0.01)
    return MeetingBaasClient(kw.pop("key", API_KEY), version, api.url, **kw)


def full_spec(**kw) -> BotSpec:
    return BotSpec(
        meeting_url="https://meet.google.com/abc-defg-hij",
        bot_name="Assistant",
        sample_rate=16000,
        entry_message="hello all",
        bot_image="https://img.example/a.png",
        recording_mode="audio_only",
        webhook_url="https://hooks.example/mb",
        webhook_secret="whsec",
        deduplication_key="dedup-1",
        extra={"customer": 7},
        start_time=1732467000123,
        reserved=True,
        waiting_room_timeout=600,
        noone_joined_timeout=300,
        silence_timeout=900,
        speech_to_text_provider="Gladia",
        speech_to_text_api_key="stt-key",
        **URLS,
        **kw,
    )


async def test_v1_create_sends_every_documented_field(api):
    async with client(api, "v1") as c:
        assert await c.create_bot(full_spec()) == "bot-1"
    (request,) = api.requests
    assert (request.method, request.path) == ("POST", "/bots")
    assert request.headers["x-meeting-baas-api-key"] == API_KEY
    assert request.headers["content-type"] == "application/json"
    assert request.body == {
        "meeting_url": "https://meet.google.com/abc-defg-hij",
        "bot_name": "Assistant",
        "reserved": True,
        "streaming": {
            "input": URLS["input_url"],
            "output": URLS["output_url"],
            "audio_frequency": "16khz",
        },
        "recording_mode": "audio_only",
        "bot_image": "https://img.example/a.png",
        "entry_message": "hello all",
        "speech_to_text": {"provider": "Gladia", "api_key": "stt-key"},
        "automatic_leave": {"waiting_room_timeout": 600, "noone_joined_timeout": 300},
        "webhook_url": "https://hooks.example/mb",
        "deduplication_key": "dedup-1",
        "extra": {"customer": 7},
        "start_time": 1732467000123,
    }


async def test_v2_create_sends_every_documented_field(api):
    async with client(api, "v2") as c:
        assert await c.create_bot(full_spec()) == "bot-1"
    (request,) = api.requests
    assert (request.method, request.path) == ("POST", "/v2/bots")
    assert request.body == {
        "meeting_url": "https://meet.google.com/abc-defg-hij",
        "bot_name": "Assistant",
        "streaming_enabled": True,
        "streaming_config": {
            "input_url": URLS["input_url"],
            "output_url": URLS["output_url"],
            "audio_frequency": 16000,
        },
        "timeout_config": {
            "waiting_room_timeout": 600,
            "no_one_joined_timeout": 300,
            "silence_timeout": 900,
        },
        "callback_enabled": True,
        "callback_config": {"url": "https://hooks.example/mb", "secret": "whsec"},
        "transcription_enabled": True,
        "transcription_config": {"provider": "Gladia"},
        "recording_mode": "audio_only",
        "bot_image": "https://img.example/a.png",
        "entry_message": "hello all",
        "extra": {"customer": 7},
        "allow_multiple_bots": True,
    }


async def test_minimal_specs_pass_the_apis_checks(api):
    spec = BotSpec(meeting_url="https://teams.microsoft.com/l/x", **URLS)
    for version in ("v1", "v2"):
        async with client(api, version) as c:
            await c.create_bot(spec)
    assert api.requests[0].body["streaming"]["audio_frequency"] == "24khz"
    assert api.requests[1].body["streaming_config"]["audio_frequency"] == 24000
    assert "timeout_config" not in api.requests[1].body


async def test_v2_timeouts_below_the_minimum_are_refused_before_sending(api):
    async with client(api, "v2") as c:
        with pytest.raises(ValidationError, match="greater than or equal to 120"):
            await c.create_bot(full_spec().model_copy(update={"waiting_room_timeout": 60}))
    assert api.requests == []


@pytest.mark.parametrize(
    ("version", "method", "path"),
    [("v1", "DELETE", "/bots/b-9"), ("v2", "POST", "/v2/bots/b-9/leave")],
)
async def test_remove_bot(api, version, method, path):
    async with client(api, version) as c:
        await c.remove_bot("b-9")
    assert [(r.method, r.path) for r in api.requests] == [(method, path)]
    assert api.requests[0].headers["x-meeting-baas-api-key"] == API_KEY


async def test_401_is_one_clear_line(api):
    async with client(api, key="wrong") as c:
        with pytest.raises(ApiError) as info:
            await c.create_bot(full_spec())
    assert info.value.status == 401
    assert str(info.value) == (
        "Meeting BaaS API: POST /v2/bots -> 401: Invalid API key "
        "(check --api-key or MEETING_BAAS_API_KEY)"
    )
    assert len(api.requests) == 1  # not retried


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (403, {"message": "forbidden for this team"}, "forbidden for this team"),
        (404, {"error": "bot not found"}, "bot not found"),
        (409, {"message": "bot already exists"}, "bot already exists"),
        (422, {"detail": [{"loc": ["body", "meeting_url"], "msg": "invalid url"}]}, "invalid url"),
    ],
)
async def test_client_errors_carry_the_apis_message(api, status, body, message):
    api.script("POST", "/v2/bots/b-1/leave", Scripted(status, body))
    async with client(api) as c:
        with pytest.raises(ApiError, match=message) as info:
            await c.remove_bot("b-1")
    assert info.value.status == status and "\n" not in str(info.value)


async def test_429_honours_retry_after(api):
    api.script("POST", "/v2/bots", Scripted(429, {"message": "slow down"}, {"Retry-After": "1"}))
    async with client(api) as c:
        start = time.monotonic()
        assert await c.create_bot(full_spec()) == "bot-1"
        elapsed = time.monotonic() - start
    assert len(api.requests) == 2
    assert elapsed >= 1.0


async def test_5xx_is_retried_with_backoff_then_gives_up(api):
    api.script("DELETE", "/bots/b-1", Scripted(500, {"message": "boom"}), Scripted(503, None))
    async with client(api, "v1") as c:
        await c.remove_bot("b-1")
    assert len(api.requests) == 3
    api.script("DELETE", "/bots/b-2", *[Scripted(502, {"error": "bad gateway"})] * 3)
    async with client(api, "v1", retries=2) as c:
        with pytest.raises(ApiError, match="502: bad gateway"):
            await c.remove_bot("b-2")
    assert len(api.requests) == 6


async def test_unreachable_api_is_a_clear_error():
    c = MeetingBaasClient(API_KEY, "v2", "http://127.0.0.1:9", retries=1, backoff_s=0.01)
    async with c:
        with pytest.raises(ApiError, match="cannot reach the server"):
            await c.remove_bot("b")


async def test_the_api_key_never_shows(api, caplog):
    api.script("POST", "/v2/bots", Scripted(500, {"message": "boom"}))
    with caplog.at_level(logging.DEBUG):
        async with client(api) as c:
            await c.create_bot(full_spec())
            assert API_KEY not in repr(c)
    assert caplog.records  # the retry was logged
    assert all(API_KEY not in r.getMessage() for r in caplog.records)


def test_a_key_is_required():
    with pytest.raises(ValueError, match="MEETING_BAAS_API_KEY"):
        MeetingBaasClient("", "v2")


@pytest.mark.parametrize("rate", [16000, 24000, 32000, 48000])
async def test_v2_streams_at_every_rate(api, rate):
    async with client(api, "v2") as c:
        await c.create_bot(
            BotSpec(meeting_url="https://meet.google.com/x", sample_rate=rate, **URLS)
        )
    assert api.requests[0].body["streaming_config"]["audio_frequency"] == rate
    assert "mode" not in api.requests[0].body["streaming_config"]  # SDK-only: sent only if asked


@pytest.mark.parametrize("rate", [32000, 48000])
async def test_v1_refuses_32k_and_48k_before_sending(api, rate):
    spec = BotSpec(meeting_url="https://meet.google.com/x", sample_rate=rate, **URLS)
    async with client(api, "v1") as c:
        with pytest.raises(ValueError, match=f"v1 API streams at 16000 or 24000 Hz, not {rate}"):
            await c.create_bot(spec)
    assert api.requests == []


async def test_v2_transcription_mode_asks_for_transcripts_and_keeps_the_input_url(api):
    spec = BotSpec(
        meeting_url="https://meet.google.com/x",
        streaming_mode="transcription",
        transcription_provider="gladia",
        **URLS,
    )
    async with client(api, "v2") as c:
        await c.create_bot(spec)
    assert api.requests[0].body["streaming_config"] == {
        "input_url": URLS["input_url"],
        "output_url": URLS["output_url"],
        "audio_frequency": 24000,
        "mode": "transcription",
        "transcription": {"provider": "gladia"},
    }
    async with client(api, "v1") as c:
        with pytest.raises(ValueError, match="transcription mode needs the v2 API"):
            await c.create_bot(spec)
