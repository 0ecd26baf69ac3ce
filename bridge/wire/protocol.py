"""The Meeting BaaS streaming protocol, sans-I/O: URL routes, bot messages and close codes.

Nothing here touches a socket; the server feeds it strings and bytes and acts on what
comes back, so every rule of the wire format is testable on its own.
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import numpy as np
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

SUPPORTED_RATES = (16000, 24000, 32000, 48000)  # what bots stream (v2: all four; v1: 16k, 24k)
SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
RATE_DIGITS = re.compile(r"[1-9][0-9]{3,5}")  # ASCII only: no sign, no "_", no other digits
SINGLE_PARAMS = ("rate", "token")  # a URL that repeats one is refused: no "last one wins"
S16LE = np.dtype("<i2")  # the wire's sample format

PathRole = Literal["dual", "output", "input"]


class CloseCode(enum.IntEnum):
    """WebSocket close codes the bridge sends; 1xxx are RFC 6455, 4xxx are ours."""

    NORMAL = 1000
    GOING_AWAY = 1001  # the server is shutting down
    MESSAGE_TOO_BIG = 1009  # a frame above max_message_bytes (sent by websockets itself)
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013  # a cap is reached (control clients of a session)
    REPLACED = 4000  # a newer socket took this socket's URL (a bot reconnect)
    SECOND_SOURCE = 4003  # another socket of the session already sends the meeting audio
    SESSION_ENDED = 4004  # the session was ended while this socket was open


class ProtocolError(ValueError):
    """A message from the bot that breaks the protocol; `reason` names it for metrics."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class RouteError(ValueError):
    """A request the server refuses before the WebSocket upgrade, with its HTTP status."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Route:
    """Where a socket belongs: its session, the URL it used and the rate it asked for."""

    session_id: str
    path_role: PathRole
    sample_rate: int | None
    token: str | None = field(default=None, repr=False)


class Hello(BaseModel):
    """The first text frame of the meeting-audio socket, sent again after every reconnect.

    `sample_rate` (gen3, v2) is the rate of every binary frame that follows, whatever the URL
    said; gen1 sends none. `protocol_version` varies by platform and is informational.
    """

    model_config = ConfigDict(extra="allow")

    protocol_version: int
    bot_id: str = Field(coerce_numbers_to_str=True)
    offset: float = 0.0
    sample_rate: int | None = None

    @field_validator("sample_rate")
    @classmethod
    def _supported(cls, rate: int | None) -> int | None:
        if rate is not None and rate not in SUPPORTED_RATES:
            raise ValueError(f"sample_rate must be one of {SUPPORTED_RATES}, got {rate}")
        return rate


SECONDS_BEFORE = 1e11  # a roster timestamp below this is in seconds (1e11 ms is 1973)


class SpeakerState(BaseModel):
    """One participant's speaking state; the bot sends the whole roster when anything changes.

    `id` is a number, null (v2), or 0 for everyone (gen1): not a key on its own (see
    bridge.wire.roster). `timestamp` is ms (gen1) or seconds with a fraction (v2 docs).
    Extra fields (gen3's `deviceId`) are kept.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    name: str = ""
    id: int | None = None
    timestamp: float | None = None
    is_speaking: bool = Field(alias="isSpeaking")
    device_id: str | None = Field(None, alias="deviceId")

    @property
    def timestamp_ms(self) -> float | None:
        """The timestamp in milliseconds since the epoch, whichever unit the bot sent."""
        if self.timestamp is None:
            return None
        return self.timestamp * 1000 if self.timestamp < SECONDS_BEFORE else self.timestamp


class SpeakerUpdate(BaseModel):
    """A text frame holding a JSON array of speaker states: the whole roster."""

    speakers: list[SpeakerState]


class BotEvent(BaseModel):
    """A transcription-mode event (v2 `mode: "transcription"`): `session.started`,
    `transcript.segment`, `translation` or `error`; `data` is provider-dependent."""

    model_config = ConfigDict(extra="allow")

    event: str
    bot_id: str | None = Field(None, coerce_numbers_to_str=True)
    data: dict[str, Any] = Field(default_factory=dict)


class TranscriptSegment(BaseModel):
    """A `transcript.segment` event's payload. Its layout is provider-dependent and not
    documented: every field is optional, and the likely spellings are all accepted."""

    model_config = ConfigDict(extra="allow")

    text: str = ""
    is_final: bool = Field(True, validation_alias=AliasChoices("isFinal", "is_final", "final"))
    start: float | None = Field(
        None, validation_alias=AliasChoices("utteranceStart", "start", "start_time")
    )
    end: float | None = Field(
        None, validation_alias=AliasChoices("utteranceEnd", "end", "end_time")
    )
    confidence: float | None = None
    words: list[Any] = Field(default_factory=list)
    speaker: dict[str, Any] | str | int | None = None
    speaker_name: str | None = None

    @property
    def speaker_label(self) -> str | None:
        """The speaker's name, wherever the provider put it."""
        if isinstance(self.speaker, dict):
            name = self.speaker.get("name")
            return None if name is None else str(name)
        if self.speaker is not None:
            return str(self.speaker)
        return self.speaker_name


BotText = Hello | SpeakerUpdate | BotEvent


def parse_route(target: str) -> Route:
    """Map a request target (`/bots/{id}[/output|/input][?rate=N&token=T]`) to a Route or raise."""
    parts = urlsplit(target)
    segments = parts.path.strip("/").split("/")
    if len(segments) not in (2, 3) or segments[0] != "bots":
        raise RouteError(404, f"unknown path {parts.path[:64]!r}; expected /bots/{{session_id}}")
    session_id = segments[1]
    if not SESSION_ID.fullmatch(session_id):
        raise RouteError(400, "session id must be 1-128 of [A-Za-z0-9_.-], starting alnum")
    path_role: PathRole = "dual"
    if len(segments) == 3:
        if segments[2] not in ("output", "input"):
            raise RouteError(
                404, f"unknown path {parts.path[:64]!r}; the suffix is /output or /input"
            )
        path_role = segments[2]  # type: ignore[assignment]
    query = parse_query(parts.query)
    return Route(session_id, path_role, _parse_rate(query.get("rate")), query.get("token"))


def parse_query(query: str) -> dict[str, str]:
    """A URL's query as one value per name; RouteError 400 if rate or token comes twice."""
    values = parse_qs(query, keep_blank_values=True)
    for name in SINGLE_PARAMS:
        if len(values.get(name, ())) > 1:
            raise RouteError(400, f"the {name} parameter is given {len(values[name])} times")
    return {name: given[0] for name, given in values.items()}


def _parse_rate(text: str | None) -> int | None:
    if text is None:
        return None
    rate = int(text) if RATE_DIGITS.fullmatch(text) else -1
    if rate not in SUPPORTED_RATES:
        raise RouteError(400, f"rate must be one of {SUPPORTED_RATES}, got {text[:16]!r}")
    return rate


def parse_control_route(target: str) -> tuple[str, str | None]:
    """`/control/{session_id}?token=T` to (session_id, token), or raise RouteError."""
    parts = urlsplit(target)
    segments = parts.path.strip("/").split("/")
    if len(segments) != 2 or segments[0] != "control" or not SESSION_ID.fullmatch(segments[1]):
        raise RouteError(404, f"unknown control path {parts.path[:64]!r}; expected /control/{{id}}")
    return segments[1], parse_query(parts.query).get("token")


def parse_text(text: str) -> BotText:
    """Parse a text frame from the bot: the hello, an array of speaker states (the roster), or
    a transcription-mode event."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ProtocolError("invalid_json", f"text frame is not JSON ({exc.msg})") from None
    try:
        if isinstance(value, dict):
            if "event" in value:
                return BotEvent.model_validate(value)
            return Hello.model_validate(value)
        if isinstance(value, list):
            return SpeakerUpdate(speakers=value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ProtocolError("invalid_message", f"{where}: {first['msg']}") from None
    raise ProtocolError(
        "unknown_message", f"expected an object or array, got {type(value).__name__}"
    )


def parse_audio(data: bytes) -> np.ndarray:
    """View a binary frame as s16le samples (no copy); odd byte counts are refused."""
    if len(data) % 2:
        raise ProtocolError("odd_length", f"{len(data)} bytes is not a whole number of samples")
    return np.frombuffer(data, S16LE)  # positional: numpy parses a dtype keyword more slowly
