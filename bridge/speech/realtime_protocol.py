"""The OpenAI Realtime WebSocket protocol, sans I/O: client events built, server events parsed,
and the ledger of a reply's audio that says what to tell the model when the meeting cuts it.

Two dialects: "ga" (the generally available API: session.type "realtime", audio formats under
session.audio, response.output_audio.* events) and "beta" (the OpenAI-Beta: realtime=v1 API that
many compatible servers still speak: input_audio_format "pcm16", response.audio.* events).
Server events of either naming are parsed whatever the dialect.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

import numpy as np

REALTIME_RATE = 24000  # pcm16 / audio/pcm: s16le mono at 24 kHz, both ways
MIN_COMMIT_MS = 100  # the server refuses to commit an input buffer holding less

Dialect = Literal["ga", "beta"]
Role = Literal["user", "assistant", "system"]


class RealtimeProtocolError(ValueError):
    """A server message that is not a well-formed Realtime event; the message says what."""


def realtime_url(base_url: str, model: str) -> str:
    """The WebSocket URL of base_url's /realtime endpoint (http(s) becomes ws(s)) for model."""
    parts = urlsplit(base_url.rstrip("/"))
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise ValueError(f"base_url must be http(s) or ws(s), not {base_url!r}")
    path = parts.path if parts.path.endswith("/realtime") else parts.path + "/realtime"
    return urlunsplit((scheme, parts.netloc, path, f"model={quote(model)}", ""))


@dataclass(frozen=True)
class SessionConfig:
    """What session.update asks of the model: voice, instructions, turn detection, transcripts."""

    voice: str
    instructions: str
    server_vad: bool  # the model detects turns (and cuts its own reply when speech starts)
    transcription_model: str | None = None  # None: no transcripts of the meeting's side
    vad_threshold: float = 0.5
    vad_prefix_ms: int = 300
    vad_silence_ms: int = 500
    dialect: Dialect = "ga"


def _turn_detection(config: SessionConfig) -> dict[str, Any] | None:
    if not config.server_vad:
        return None  # the bridge commits each turn and asks for the reply itself
    return {
        "type": "server_vad",
        "threshold": config.vad_threshold,
        "prefix_padding_ms": config.vad_prefix_ms,
        "silence_duration_ms": config.vad_silence_ms,
        "create_response": True,
        "interrupt_response": True,
    }


def session_update(config: SessionConfig) -> dict[str, Any]:
    """session.update: PCM16 at 24 kHz both ways, the voice, instructions and turn detection."""
    transcription = (
        {"model": config.transcription_model} if config.transcription_model is not None else None
    )
    if config.dialect == "beta":
        session: dict[str, Any] = {
            "modalities": ["audio", "text"],
            "instructions": config.instructions,
            "voice": config.voice,
            "input_audio_format": "pcm16",
            "output_audio_format": "pcm16",
            "turn_detection": _turn_detection(config),
            "input_audio_transcription": transcription,
        }
    else:
        pcm = {"type": "audio/pcm", "rate": REALTIME_RATE}
        audio_in: dict[str, Any] = {"format": pcm, "turn_detection": _turn_detection(config)}
        if transcription is not None:
            audio_in["transcription"] = transcription
        session = {
            "type": "realtime",
            "output_modalities": ["audio"],
            "instructions": config.instructions,
            "audio": {"input": audio_in, "output": {"format": pcm, "voice": config.voice}},
        }
    return {"type": "session.update", "session": session}


def append_audio(samples: np.ndarray) -> dict[str, Any]:
    """input_audio_buffer.append of s16 samples at REALTIME_RATE, base64 of little-endian PCM."""
    pcm = np.ascontiguousarray(samples, dtype="<i2").tobytes()
    return {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode("ascii")}


def commit_audio() -> dict[str, Any]:
    """input_audio_buffer.commit: what was appended since the last commit is the user's turn."""
    return {"type": "input_audio_buffer.commit"}


def create_response(event_id: str, instructions: str | None = None) -> dict[str, Any]:
    """response.create; instructions, when given, steer this response only. An error event
    naming event_id says the model refused it."""
    event: dict[str, Any] = {"type": "response.create", "event_id": event_id}
    if instructions is not None:
        event["response"] = {"instructions": instructions}
    return event


def cancel_response() -> dict[str, Any]:
    return {"type": "response.cancel"}


def truncate_item(item_id: str, audio_end_ms: int, content_index: int = 0) -> dict[str, Any]:
    """conversation.item.truncate: the model forgets its audio (and text) after audio_end_ms."""
    return {
        "type": "conversation.item.truncate",
        "item_id": item_id,
        "content_index": content_index,
        "audio_end_ms": audio_end_ms,
    }


def text_item(role: Role, text: str, dialect: Dialect = "ga") -> dict[str, Any]:
    """conversation.item.create of a text message (context, or history replayed on reconnect)."""
    kind = "input_text"  # what the meeting said, and context
    if role == "assistant":
        kind = "text" if dialect == "beta" else "output_text"
    item = {"type": "message", "role": role, "content": [{"type": kind, "text": text}]}
    return {"type": "conversation.item.create", "item": item}


def encode(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"))


# server events: only those the bridge acts on; the rest parse to None


@dataclass(frozen=True, slots=True)
class SessionReady:
    """session.created or session.updated, with the session the server now runs."""

    session: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ResponseStarted:
    response_id: str


@dataclass(frozen=True, slots=True)
class ResponseDone:
    response_id: str
    status: str  # completed, cancelled, incomplete, failed


@dataclass(frozen=True, slots=True)
class AudioDelta:
    """A piece of a reply's audio: s16 samples at REALTIME_RATE."""

    response_id: str
    item_id: str
    content_index: int
    audio: np.ndarray


@dataclass(frozen=True, slots=True)
class AudioDone:
    response_id: str
    item_id: str


@dataclass(frozen=True, slots=True)
class Transcript:
    """A whole transcript: the model's own reply (assistant) or the meeting's turn (user)."""

    role: Literal["user", "assistant"]
    item_id: str
    text: str


@dataclass(frozen=True, slots=True)
class InputCommitted:
    """The input buffer became the user item item_id (by a commit, or the server's VAD)."""

    item_id: str


@dataclass(frozen=True, slots=True)
class SpeechBegan:
    """The server's VAD heard speech start at audio_start_ms of the audio appended so far."""

    audio_start_ms: int
    item_id: str


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    audio_end_ms: int
    item_id: str


@dataclass(frozen=True, slots=True)
class Truncated:
    item_id: str
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class ServerError:
    """An error event: the model refused a client event (event_id) or failed."""

    kind: str
    code: str | None
    message: str
    event_id: str | None = None


ServerEvent = (
    SessionReady
    | ResponseStarted
    | ResponseDone
    | AudioDelta
    | AudioDone
    | Transcript
    | InputCommitted
    | SpeechBegan
    | SpeechEnded
    | Truncated
    | ServerError
)

AUDIO_DELTA = frozenset({"response.output_audio.delta", "response.audio.delta"})
AUDIO_DONE = frozenset({"response.output_audio.done", "response.audio.done"})
REPLY_TRANSCRIPT = frozenset(
    {"response.output_audio_transcript.done", "response.audio_transcript.done"}
)


def decode_audio(data: Any) -> np.ndarray:
    """s16 samples of a base64 PCM16 field; RealtimeProtocolError if it is not that."""
    if not isinstance(data, str):
        raise RealtimeProtocolError("audio: expected a base64 string")
    try:
        raw = base64.b64decode(data, validate=True)
    except binascii.Error:
        raise RealtimeProtocolError("audio: not valid base64") from None
    if len(raw) % 2:
        raise RealtimeProtocolError(f"audio: {len(raw)} bytes is not whole 16-bit samples")
    return np.frombuffer(raw, dtype="<i2")


def parse_server_event(message: str | bytes) -> ServerEvent | None:
    """One server message; None for event types the bridge has no use for."""
    if isinstance(message, bytes):
        raise RealtimeProtocolError("events are JSON text frames, got a binary frame")
    try:
        data = json.loads(message)
    except ValueError as exc:
        raise RealtimeProtocolError(f"not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise RealtimeProtocolError("an event is a JSON object with a string `type`")
    try:
        return _event(data["type"], data)
    except (KeyError, TypeError) as exc:
        raise RealtimeProtocolError(f"{data['type']}: missing or bad field {exc}") from None


def _event(kind: str, data: dict[str, Any]) -> ServerEvent | None:
    if kind in AUDIO_DELTA:
        return AudioDelta(
            str(data["response_id"]),
            str(data["item_id"]),
            int(data.get("content_index", 0)),
            decode_audio(data["delta"]),
        )
    if kind in AUDIO_DONE:
        return AudioDone(str(data["response_id"]), str(data["item_id"]))
    if kind in REPLY_TRANSCRIPT:
        return Transcript("assistant", str(data["item_id"]), str(data["transcript"]))
    if kind == "conversation.item.input_audio_transcription.completed":
        return Transcript("user", str(data["item_id"]), str(data["transcript"]))
    if kind == "response.created":
        return ResponseStarted(str(data["response"]["id"]))
    if kind == "response.done":
        response = data["response"]
        return ResponseDone(str(response["id"]), str(response.get("status", "completed")))
    if kind == "input_audio_buffer.committed":
        return InputCommitted(str(data["item_id"]))
    if kind == "input_audio_buffer.speech_started":
        return SpeechBegan(int(data["audio_start_ms"]), str(data.get("item_id", "")))
    if kind == "input_audio_buffer.speech_stopped":
        return SpeechEnded(int(data["audio_end_ms"]), str(data.get("item_id", "")))
    if kind == "conversation.item.truncated":
        return Truncated(str(data["item_id"]), int(data["audio_end_ms"]))
    if kind in ("session.created", "session.updated"):
        session = data["session"]
        if not isinstance(session, dict):
            raise TypeError("session")
        return SessionReady(session)
    if kind == "error":
        error = data["error"]
        return ServerError(
            str(error.get("type", "error")),
            error.get("code"),
            str(error.get("message", "")),
            error.get("event_id"),
        )
    return None


# the reply ledger


@dataclass
class ItemAudio:
    """Audio of one reply item received from the model, in samples at REALTIME_RATE."""

    response_id: str
    received: int = 0
    cut: bool = False


@dataclass
class ReplyLedger:
    """Which response is live, how much audio each of its items brought, which were cut.

    Decides what a cut sends: response.cancel for a response being made (at once, or as soon
    as one asked for starts), and per item a truncate at the audio the meeting heard, never
    past the audio the model sent. A response counts as live until its response.done, even
    once cancelled: the model takes no response.create before that.
    """

    active: str | None = None  # the response being made, until its response.done
    requested: str | None = None  # event_id of a response.create whose response has not started
    cancelled: str | None = None  # the last response cancelled: its late audio is not played
    cancel_on_start: bool = False  # cut while a response was asked for: cancel it once it starts
    items: dict[str, ItemAudio] = field(default_factory=dict)

    @property
    def busy(self) -> bool:
        """A response is asked for or being made: another response.create must wait."""
        return self.requested is not None or self.active is not None

    def request(self, event_id: str) -> None:
        self.requested = event_id

    def refused(self, event_id: str | None) -> None:
        """An error event for event_id: if it is the response.create, no response will come."""
        if event_id is not None and event_id == self.requested:
            self.requested, self.cancel_on_start = None, False

    def started(self, response_id: str) -> list[dict[str, Any]]:
        """response.created; returns the cancel if it was cut before it started."""
        self.active, self.requested = response_id, None
        if self.cancel_on_start:
            self.cancel_on_start = False
            return self.cancel()
        return []

    def done(self, response_id: str) -> None:
        """response.done: no more audio of it will come, so its cut items are let go."""
        if self.active == response_id:
            self.active = None
        for item_id in [i for i, a in self.items.items() if a.cut and a.response_id == response_id]:
            del self.items[item_id]

    def audio(self, delta: AudioDelta) -> bool:
        """Count a delta's audio; False if it must not play (its response or item was cut)."""
        if delta.response_id == self.cancelled:
            return False
        item = self.items.setdefault(delta.item_id, ItemAudio(delta.response_id))
        if item.cut:
            return False
        item.received += len(delta.audio)
        return True

    def cancel(self) -> list[dict[str, Any]]:
        """response.cancel for the live response (once); for one asked for, once it starts."""
        if self.active is not None and self.active != self.cancelled:
            self.cancelled = self.active
            return [cancel_response()]
        if self.active is None and self.requested is not None:
            self.cancel_on_start = True
        return []

    def truncate(self, item_id: str, heard_ms: float) -> list[dict[str, Any]]:
        """The truncate for an item the meeting heard heard_ms of (once per item)."""
        item = self.items.get(item_id)
        if item is None or item.cut:
            return []
        item.cut = True
        received_ms = item.received * 1000 // REALTIME_RATE
        return [truncate_item(item_id, min(round(heard_ms), received_ms))]

    def forget(self, item_id: str) -> None:
        """An item that played to its end: nothing will be said of it again."""
        self.items.pop(item_id, None)

    def reset(self) -> None:
        """A new connection: the model's former responses and items are gone with it."""
        self.active = self.cancelled = self.requested = None
        self.cancel_on_start = False
        self.items.clear()
