"""The Meeting BaaS REST client: send a streaming bot into a meeting, and remove it (v1 and v2).

Our options (BotSpec) are version-neutral; `v1_request` and `v2_request` are the one place
that maps them to each API version's fields. The API key travels only in its header and
never appears in logs, errors or reprs.
"""

from __future__ import annotations

from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from bridge.retry import HttpError, RetryPolicy, send

ApiVersion = Literal["v1", "v2"]
DEFAULT_BASE_URL = "https://api.meetingbaas.com"
API_KEY_HEADER = "x-meeting-baas-api-key"
DEFAULT_BOT_NAME = "speakbridge"
ERROR_HINTS = {
    401: "check --api-key or MEETING_BAAS_API_KEY",
    403: "the key may not use this endpoint or bot",
    404: "no such bot, or a wrong --api-base-url / --api-version",
}


class BotSpec(BaseModel):
    """What the user wants of the bot, whatever the API version."""

    model_config = ConfigDict(extra="forbid")

    meeting_url: str
    bot_name: str = DEFAULT_BOT_NAME
    output_url: str = Field(description="where the bot sends the meeting's audio")
    input_url: str = Field(description="where the bot takes the audio it plays")
    sample_rate: Literal[16000, 24000, 32000, 48000] = 24000  # v1: 16000 or 24000 only
    streaming_mode: Literal["audio", "transcription"] = "audio"  # v2 only
    transcription_provider: str | None = None  # v2 transcription mode: gladia, deepgram...
    entry_message: str | None = None
    bot_image: str | None = None
    recording_mode: Literal["speaker_view", "gallery_view", "audio_only"] | None = None
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None  # v2: echoed back in x-mb-secret
    deduplication_key: str | None = None  # v1
    extra: dict[str, Any] | None = None
    start_time: int | None = None  # v1: Unix milliseconds, for a reserved bot
    reserved: bool = False  # v1
    waiting_room_timeout: int | None = None
    noone_joined_timeout: int | None = None
    silence_timeout: int | None = None  # v2
    speech_to_text_provider: Literal["Default", "Gladia", "Runpod"] | None = None
    speech_to_text_api_key: SecretStr | None = None
    allow_multiple_bots: bool = True  # v2


# v1: POST /bots


class StreamingV1(BaseModel):
    input: str
    output: str
    audio_frequency: Literal["16khz", "24khz"]


class SpeechToTextV1(BaseModel):
    provider: Literal["Default", "Gladia", "Runpod"]
    api_key: str | None = None


class AutomaticLeaveV1(BaseModel):
    waiting_room_timeout: int | None = None
    noone_joined_timeout: int | None = None


class BotRequestV1(BaseModel):
    meeting_url: str
    bot_name: str
    reserved: bool
    streaming: StreamingV1
    recording_mode: str | None = None
    bot_image: str | None = None
    entry_message: str | None = None
    speech_to_text: SpeechToTextV1 | None = None
    automatic_leave: AutomaticLeaveV1 | None = None
    webhook_url: str | None = None
    deduplication_key: str | None = None
    extra: dict[str, Any] | None = None
    start_time: int | None = None


class BotResponseV1(BaseModel):
    bot_id: str | int


# v2: POST /v2/bots


class StreamingTranscriptionV2(BaseModel):
    provider: str


class StreamingConfigV2(BaseModel):
    input_url: str | None
    output_url: str | None
    audio_frequency: Literal[16000, 24000, 32000, 48000]
    mode: Literal["transcription"] | None = None  # SDK-only field: sent only when asked for
    transcription: StreamingTranscriptionV2 | None = None


class TimeoutConfigV2(BaseModel):
    waiting_room_timeout: int | None = Field(None, ge=120)
    no_one_joined_timeout: int | None = Field(None, ge=120)
    silence_timeout: int | None = Field(None, ge=120)


class CallbackConfigV2(BaseModel):
    url: str
    secret: str | None = None


class BotRequestV2(BaseModel):
    meeting_url: str
    bot_name: str
    streaming_enabled: bool = True
    streaming_config: StreamingConfigV2
    timeout_config: TimeoutConfigV2 | None = None
    callback_enabled: bool = False
    callback_config: CallbackConfigV2 | None = None
    transcription_enabled: bool = False
    transcription_config: dict[str, Any] | None = None
    recording_mode: str | None = None
    bot_image: str | None = None
    entry_message: str | None = None
    extra: dict[str, Any] | None = None
    allow_multiple_bots: bool = True


class BotDataV2(BaseModel):
    bot_id: str


class BotResponseV2(BaseModel):
    success: bool
    data: BotDataV2


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


V1_RATES = (16000, 24000)


def v1_request(spec: BotSpec) -> BotRequestV1:
    """spec in v1's fields; what v1 cannot ask for (32/48 kHz, transcription mode) is refused."""
    if spec.sample_rate not in V1_RATES:
        raise ValueError(
            f"the v1 API streams at 16000 or 24000 Hz, not {spec.sample_rate}: "
            "use --api-version 2 for 32000 or 48000"
        )
    if spec.streaming_mode != "audio":
        raise ValueError("transcription mode needs the v2 API (--api-version 2)")
    leave = None
    if spec.waiting_room_timeout is not None or spec.noone_joined_timeout is not None:
        leave = AutomaticLeaveV1(
            waiting_room_timeout=spec.waiting_room_timeout,
            noone_joined_timeout=spec.noone_joined_timeout,
        )
    stt = None
    if spec.speech_to_text_provider is not None:
        stt = SpeechToTextV1(
            provider=spec.speech_to_text_provider, api_key=_secret(spec.speech_to_text_api_key)
        )
    return BotRequestV1(
        meeting_url=spec.meeting_url,
        bot_name=spec.bot_name,
        reserved=spec.reserved,
        streaming=StreamingV1(
            input=spec.input_url,
            output=spec.output_url,
            audio_frequency="16khz" if spec.sample_rate == 16000 else "24khz",
        ),
        recording_mode=spec.recording_mode,
        bot_image=spec.bot_image,
        entry_message=spec.entry_message,
        speech_to_text=stt,
        automatic_leave=leave,
        webhook_url=spec.webhook_url,
        deduplication_key=spec.deduplication_key,
        extra=spec.extra,
        start_time=spec.start_time,
    )


def _streaming_v2(spec: BotSpec) -> StreamingConfigV2:
    """v2's streaming_config: in transcription mode the output socket carries transcript
    events, and the input socket still takes the bot's speech."""
    if spec.streaming_mode == "transcription":
        if not spec.transcription_provider:
            raise ValueError("transcription mode needs a provider (--transcription PROVIDER)")
        return StreamingConfigV2(
            input_url=spec.input_url,
            output_url=spec.output_url,
            audio_frequency=spec.sample_rate,
            mode="transcription",
            transcription=StreamingTranscriptionV2(provider=spec.transcription_provider),
        )
    return StreamingConfigV2(
        input_url=spec.input_url, output_url=spec.output_url, audio_frequency=spec.sample_rate
    )


def v2_request(spec: BotSpec) -> BotRequestV2:
    """spec in v2's fields (timeouts below v2's minimum of 120 s are refused here, not there)."""
    timeouts = TimeoutConfigV2(
        waiting_room_timeout=spec.waiting_room_timeout,
        no_one_joined_timeout=spec.noone_joined_timeout,
        silence_timeout=spec.silence_timeout,
    )
    callback = None
    if spec.webhook_url is not None:
        callback = CallbackConfigV2(url=spec.webhook_url, secret=_secret(spec.webhook_secret))
    transcription = spec.speech_to_text_provider is not None
    return BotRequestV2(
        meeting_url=spec.meeting_url,
        bot_name=spec.bot_name,
        streaming_config=_streaming_v2(spec),
        timeout_config=timeouts if timeouts.model_dump(exclude_none=True) else None,
        callback_enabled=callback is not None,
        callback_config=callback,
        transcription_enabled=transcription,
        transcription_config={"provider": spec.speech_to_text_provider} if transcription else None,
        recording_mode=spec.recording_mode,
        bot_image=spec.bot_image,
        entry_message=spec.entry_message,
        extra=spec.extra,
        allow_multiple_bots=spec.allow_multiple_bots,
    )


class ApiError(Exception):
    """The API refused a request; str() is one line with its status and the API's message."""

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        hint = ERROR_HINTS.get(status)
        super().__init__(
            f"Meeting BaaS API: {method} {path} -> {status}: {message}"
            + (f" ({hint})" if hint else "")
        )
        self.status = status
        self.message = message


class MeetingBaasClient:
    """Async client for one API version, with timeouts and retries on 429 and 5xx.

    Retries honour Retry-After (capped by max_retry_after_s); transport errors retry too.
    Pass `transport` to route requests elsewhere (tests use a real local server instead).
    """

    def __init__(
        self,
        api_key: str,
        api_version: ApiVersion = "v2",
        base_url: str = DEFAULT_BASE_URL,
        timeout_s: float = 10.0,
        retries: int = 4,
        backoff_s: float = 0.5,
        max_retry_after_s: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("a Meeting BaaS API key is needed: --api-key or MEETING_BAAS_API_KEY")
        self.api_version = api_version
        self.policy = RetryPolicy(retries, backoff_s, max_retry_after_s)
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers={API_KEY_HEADER: api_key, "accept": "application/json"},
            timeout=timeout_s,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"MeetingBaasClient({self.api_version}, {self._http.base_url})"

    async def __aenter__(self) -> MeetingBaasClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    async def create_bot(self, spec: BotSpec) -> str:
        """Send a bot into spec.meeting_url, streaming to spec's URLs; returns its bot id."""
        if self.api_version == "v1":
            body = v1_request(spec).model_dump(exclude_none=True)
            response = await self._request("POST", "/bots", body)
            return str(BotResponseV1.model_validate(response.json()).bot_id)
        body = v2_request(spec).model_dump(exclude_none=True)
        response = await self._request("POST", "/v2/bots", body)
        return BotResponseV2.model_validate(response.json()).data.bot_id

    async def remove_bot(self, bot_id: str) -> None:
        """Make the bot leave its meeting."""
        if self.api_version == "v1":
            await self._request("DELETE", f"/bots/{bot_id}")
        else:
            await self._request("POST", f"/v2/bots/{bot_id}/leave")

    async def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> httpx.Response:
        try:
            return await send(self._http, method, path, self.policy, json=body)
        except HttpError as exc:
            raise ApiError(method, path, exc.status, exc.message) from None
