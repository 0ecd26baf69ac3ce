"""A fake OpenAI Realtime server on loopback: a real WebSocket server, the real event format.

It checks the handshake (path /v1/realtime?model=, bearer key, the beta header for "beta") and
validates every client event field by field: known types only, session.update's audio format
(PCM16 at 24 kHz both ways), voice, instructions and turn detection, base64 of whole 16-bit
samples, commits of at least 100 ms, one response at a time, truncates of assistant items
within the audio sent. Whatever fails is answered with an `error` event naming the client's
event_id, as the real API does, and kept in `errors`.

It answers as the API does: session.created on connect, session.updated, committed and
transcribed user items, and scripted replies: a tone per reply, streamed as audio deltas
faster than real time, with the transcript, then response.done. A plain energy detector
stands in for server_vad (speech_started cuts the reply being made, as interrupt_response
does; speech_stopped commits and answers).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

API_KEY = "sk-test"
RATE = 24000
PCM_GA = {"type": "audio/pcm", "rate": RATE}
CLIENT_EVENTS = frozenset(
    {
        "session.update",
        "input_audio_buffer.append",
        "input_audio_buffer.commit",
        "conversation.item.create",
        "conversation.item.truncate",
        "response.create",
        "response.cancel",
    }
)
GA_SESSION_KEYS = frozenset({"type", "output_modalities", "instructions", "audio", "model"})
BETA_SESSION_KEYS = frozenset(
    {
        "modalities",
        "instructions",
        "voice",
        "input_audio_format",
        "output_audio_format",
        "turn_detection",
        "input_audio_transcription",
    }
)
VAD_KEYS = frozenset(
    {
        "type",
        "threshold",
        "prefix_padding_ms",
        "silence_duration_ms",
        "create_response",
        "interrupt_response",
    }
)
SPEECH_RMS = 300.0  # the fake's server VAD: a 20 ms chunk this loud is speech


class Refused(Exception):
    """A client event the real API would refuse: answered with an error event."""

    def __init__(self, message: str, code: str = "invalid_value", param: str | None = None):
        super().__init__(message)
        self.code, self.param = code, param


def need(condition: object, message: str, param: str | None = None) -> None:
    if not condition:
        raise Refused(message, param=param)


@dataclass
class Reply:
    """A scripted reply: its transcript and the seconds of audio (a tone) it speaks."""

    text: str
    seconds: float


@dataclass
class Item:
    id: str
    role: str
    text: str = ""
    audio: list[np.ndarray] = field(default_factory=list)  # user turns: what was committed
    samples: int = 0  # assistant replies: audio sent

    def pcm(self) -> np.ndarray:
        return np.concatenate(self.audio) if self.audio else np.zeros(0, np.int16)


class Conversation:
    """One client connection: its session, input buffer, items, and the response being made."""

    def __init__(self, fake: FakeRealtime, ws: ServerConnection, n: int) -> None:
        self.fake = fake
        self.ws = ws
        self.n = n
        self.events: list[dict[str, Any]] = []  # every client event, in order
        self.session: dict[str, Any] | None = None
        self.buffer: list[np.ndarray] = []
        self.items: dict[str, Item] = {}
        self.appended = 0  # samples appended on this connection
        self.append_times: list[tuple[float, int]] = []  # (time, samples so far)
        self.truncates: list[dict[str, Any]] = []
        self.responding: asyncio.Task[None] | None = None
        self.response_id: str | None = None
        self._ids = 0
        self._speaking = False
        self._quiet_ms = 0.0
        self._speech_item: str | None = None

    # helpers

    @property
    def dialect(self) -> str:
        return self.fake.dialect

    def next_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}_{self.n}_{self._ids}"

    async def send(self, kind: str, **fields: Any) -> None:
        event = {"event_id": self.next_id("event"), "type": kind, **fields}
        self.fake.sent.append(event)
        await self.ws.send(json.dumps(event))

    def turn_detection(self) -> dict[str, Any] | None:
        assert self.session is not None
        if self.dialect == "beta":
            return self.session["turn_detection"]
        return self.session["audio"]["input"]["turn_detection"]

    def transcribes(self) -> bool:
        assert self.session is not None
        if self.dialect == "beta":
            return self.session.get("input_audio_transcription") is not None
        return self.session["audio"]["input"].get("transcription") is not None

    def user_turns(self) -> list[Item]:
        return [i for i in self.items.values() if i.role == "user" and i.audio]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    def append_rate(self) -> float:
        """Samples appended per second of wall time, from the first append to the last."""
        (t0, n0), (t1, n1) = self.append_times[0], self.append_times[-1]
        return (n1 - n0) / (t1 - t0)

    # events in

    async def handle(self, text: str | bytes) -> None:
        event_id = None
        try:
            need(isinstance(text, str), "events are JSON text frames")
            event = json.loads(text)
            need(isinstance(event, dict), "an event is a JSON object")
            event_id = event.get("event_id")
            need(event_id is None or isinstance(event_id, str), "event_id must be a string")
            kind = event.get("type")
            need(kind in CLIENT_EVENTS, f"unknown event type {kind!r}", "type")
            self.events.append(event)
            if kind != "session.update":
                need(self.session is not None, "session.update must come first")
            await getattr(self, "on_" + kind.replace(".", "_"))(event)
        except (Refused, ValueError, KeyError, TypeError) as exc:
            code = exc.code if isinstance(exc, Refused) else "invalid_request_error"
            param = exc.param if isinstance(exc, Refused) else None
            error = {"type": "invalid_request_error", "code": code, "message": str(exc)}
            error |= {"param": param, "event_id": event_id}
            self.fake.errors.append(error)
            await self.send("error", error=error)

    async def on_session_update(self, event: dict[str, Any]) -> None:
        session = event["session"]
        need(isinstance(session, dict), "session must be an object", "session")
        if self.dialect == "beta":
            validate_beta_session(session)
        else:
            validate_ga_session(session)
        self.session = session
        await self.send("session.updated", session=session)

    async def on_input_audio_buffer_append(self, event: dict[str, Any]) -> None:
        need(set(event) <= {"type", "event_id", "audio"}, "unknown field", "audio")
        audio = decode_pcm16(event["audio"])
        self.buffer.append(audio)
        self.appended += len(audio)
        self.append_times.append((time.monotonic(), self.appended))
        vad = self.turn_detection()
        if vad is not None:
            await self.server_vad(audio, vad)

    async def on_input_audio_buffer_commit(self, event: dict[str, Any]) -> None:
        buffered = sum(len(a) for a in self.buffer)
        if buffered < RATE // 10:
            raise Refused(
                f"buffer too small: {buffered * 1000 // RATE} ms, at least 100 ms needed",
                "input_audio_buffer_commit_empty",
            )
        await self.commit()

    async def on_conversation_item_create(self, event: dict[str, Any]) -> None:
        item = event["item"]
        need(set(item) <= {"type", "role", "content", "id"}, "unknown item field", "item")
        need(item["type"] == "message", "only message items here", "item.type")
        role = item["role"]
        need(role in ("system", "user", "assistant"), f"bad role {role!r}", "item.role")
        text_type = "input_text"
        if role == "assistant":
            text_type = "text" if self.dialect == "beta" else "output_text"
        parts = item["content"]
        need(isinstance(parts, list) and parts, "content must be a non-empty list")
        for part in parts:
            need(part.get("type") == text_type, f"{role} content must be {text_type}")
            need(isinstance(part.get("text"), str) and part["text"], "text must be a string")
        created = Item(self.next_id("item"), role, " ".join(p["text"] for p in parts))
        self.items[created.id] = created
        await self.item_added(created)

    async def on_response_create(self, event: dict[str, Any]) -> None:
        if self.responding is not None:
            raise Refused(
                "Conversation already has an active response",
                "conversation_already_has_active_response",
            )
        response = event.get("response", {})
        need(set(response) <= {"instructions"}, "unknown response field", "response")
        need(isinstance(response.get("instructions", ""), str), "instructions must be text")
        self.start_response()

    async def on_response_cancel(self, event: dict[str, Any]) -> None:
        if self.responding is None:
            raise Refused("no active response to cancel", "response_cancel_not_active")
        await self.cancel_response()

    async def on_conversation_item_truncate(self, event: dict[str, Any]) -> None:
        need(set(event) <= {"type", "event_id", "item_id", "content_index", "audio_end_ms"}, "?")
        item = self.items.get(event["item_id"])
        need(item is not None and item.role == "assistant", "no such assistant item", "item_id")
        assert item is not None
        need(event["content_index"] == 0, "content_index must be 0", "content_index")
        end = event["audio_end_ms"]
        need(isinstance(end, int) and end >= 0, "audio_end_ms must be a whole ms", "audio_end_ms")
        sent_ms = item.samples * 1000 // RATE
        need(end <= sent_ms, f"audio_end_ms {end} is past the audio ({sent_ms} ms)")
        self.truncates.append({**event, "sent_ms": sent_ms})
        await self.send(
            "conversation.item.truncated", item_id=item.id, content_index=0, audio_end_ms=end
        )

    # the model

    async def item_added(self, item: Item) -> None:
        kind = "conversation.item.created" if self.dialect == "beta" else "conversation.item.added"
        await self.send(kind, item={"id": item.id, "type": "message", "role": item.role})

    async def commit(self, item_id: str | None = None) -> None:
        item = Item(item_id or self.next_id("item"), "user", audio=self.buffer)
        self.buffer = []
        self.items[item.id] = item
        await self.send("input_audio_buffer.committed", previous_item_id=None, item_id=item.id)
        await self.item_added(item)
        if self.transcribes():
            transcript = self.fake.transcripts.pop(0) if self.fake.transcripts else ""
            await self.send(
                "conversation.item.input_audio_transcription.completed",
                item_id=item.id,
                content_index=0,
                transcript=transcript,
            )

    def start_response(self) -> None:
        self.response_id = self.next_id("resp")
        self.responding = asyncio.create_task(self.respond(self.response_id))

    async def cancel_response(self) -> None:
        assert self.responding is not None
        self.responding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.responding
        self.responding = None
        await self.send("response.done", response={"id": self.response_id, "status": "cancelled"})
        self.fake.cancelled += 1

    async def respond(self, response_id: str) -> None:
        fake = self.fake
        await asyncio.sleep(fake.response_delay_s)
        reply = fake.replies.pop(0)
        fake.responses += 1
        audio = tone(300 + 100 * fake.responses, reply.seconds)
        item = Item(self.next_id("item"), "assistant", reply.text)
        self.items[item.id] = item
        where = {"response_id": response_id, "item_id": item.id, "output_index": 0}
        beta = self.dialect == "beta"
        await self.send("response.created", response={"id": response_id, "status": "in_progress"})
        await self.send(
            "response.output_item.added",
            response_id=response_id,
            output_index=0,
            item={"id": item.id, "type": "message", "role": "assistant"},
        )
        await self.item_added(item)
        part = {"type": "audio" if beta else "output_audio", "transcript": ""}
        await self.send("response.content_part.added", **where, content_index=0, part=part)
        delta = "response.audio.delta" if beta else "response.output_audio.delta"
        chunk = RATE * fake.delta_ms // 1000
        for at in range(0, len(audio), chunk):
            piece = audio[at : at + chunk]
            item.samples += len(piece)
            payload = base64.b64encode(piece.tobytes()).decode()
            await self.send(delta, **where, content_index=0, delta=payload)
            await asyncio.sleep(len(piece) / RATE / fake.pace)
        await self.send(
            "response.audio.done" if beta else "response.output_audio.done",
            **where,
            content_index=0,
        )
        await self.send(
            "response.audio_transcript.done" if beta else "response.output_audio_transcript.done",
            **where,
            content_index=0,
            transcript=reply.text,
        )
        await self.send("response.output_item.done", response_id=response_id, output_index=0)
        self.responding = None
        await self.send("response.done", response={"id": response_id, "status": "completed"})
        if fake.close_after_responses == fake.responses:
            await self.ws.close(1011, "fake: going away")

    async def server_vad(self, audio: np.ndarray, vad: dict[str, Any]) -> None:
        """speech_started / speech_stopped from chunk loudness, as server_vad reports them."""
        ms = len(audio) * 1000 / RATE
        loud = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) > SPEECH_RMS
        at_ms = int((self.appended - len(audio)) * 1000 / RATE)
        if loud and not self._speaking:
            self._speaking, self._quiet_ms = True, 0.0
            self._speech_item = self.next_id("item")
            start = max(0, at_ms - vad["prefix_padding_ms"])
            await self.send(
                "input_audio_buffer.speech_started",
                audio_start_ms=start,
                item_id=self._speech_item,
            )
            if self.responding is not None and vad["interrupt_response"]:
                await self.cancel_response()
        elif self._speaking:
            self._quiet_ms = 0.0 if loud else self._quiet_ms + ms
            if self._quiet_ms >= vad["silence_duration_ms"]:
                self._speaking = False
                await self.send(
                    "input_audio_buffer.speech_stopped",
                    audio_end_ms=at_ms,
                    item_id=self._speech_item,
                )
                await self.commit(self._speech_item)
                if vad["create_response"] and self.responding is None:
                    self.start_response()


class FakeRealtime:
    """Scripted replies and user transcripts; keeps every connection and the errors it sent."""

    def __init__(
        self,
        replies: list[tuple[str, float]],
        transcripts: list[str] = (),  # type: ignore[assignment]
        dialect: str = "ga",
        response_delay_s: float = 0.0,
        pace: float = 4.0,  # replies stream this many times faster than real time
        delta_ms: int = 100,
        close_after_responses: int | None = None,
        refuse_first: tuple[int, ...] = (),  # HTTP statuses of the first handshakes refused
    ) -> None:
        self.replies = [Reply(text, seconds) for text, seconds in replies]
        self.transcripts = list(transcripts)
        self.dialect = dialect
        self.response_delay_s = response_delay_s
        self.pace = pace
        self.delta_ms = delta_ms
        self.close_after_responses = close_after_responses
        self.refuse_first = list(refuse_first)
        self.conversations: list[Conversation] = []
        self.errors: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.refused: list[int] = []  # handshakes refused, by HTTP status
        self.models: list[str] = []
        self.responses = 0
        self.cancelled = 0
        self._server: Server | None = None
        self.base_url = ""

    async def __aenter__(self) -> FakeRealtime:
        self._server = await serve(
            self._serve, "127.0.0.1", 0, process_request=self._handshake, compression=None
        )
        port = self._server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def _handshake(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        model = parse_qs(parts.query).get("model", [""])[0]
        status, why = 0, ""
        if self.refuse_first:
            status, why = self.refuse_first.pop(0), "the fake is busy"
        elif request.headers.get("Authorization") != f"Bearer {API_KEY}":
            status, why = 401, "Incorrect API key provided"
        elif parts.path != "/v1/realtime" or not model:
            status, why = 404, "expected /v1/realtime?model=..."
        elif (self.dialect == "beta") != (request.headers.get("OpenAI-Beta") == "realtime=v1"):
            status, why = 400, f"the {self.dialect} API, and the OpenAI-Beta header, disagree"
        if status:
            self.refused.append(status)
            return connection.respond(status, why + "\n")
        self.models.append(model)
        return None

    async def _serve(self, ws: ServerConnection) -> None:
        conversation = Conversation(self, ws, len(self.conversations) + 1)
        self.conversations.append(conversation)
        await conversation.send("session.created", session={"id": f"sess_{conversation.n}"})
        try:
            async for message in ws:
                await conversation.handle(message)
        except ConnectionClosed:
            pass
        finally:
            if conversation.responding is not None:
                conversation.responding.cancel()


def validate_ga_session(session: dict[str, Any]) -> None:
    need(set(session) <= GA_SESSION_KEYS, f"unknown fields {set(session) - GA_SESSION_KEYS}")
    need(session["type"] == "realtime", "session.type must be realtime", "session.type")
    need(session["output_modalities"] == ["audio"], "output_modalities", "output_modalities")
    need(isinstance(session["instructions"], str), "instructions must be text", "instructions")
    audio_in, audio_out = session["audio"]["input"], session["audio"]["output"]
    need(set(audio_in) <= {"format", "turn_detection", "transcription"}, "audio.input fields")
    need(set(audio_out) <= {"format", "voice"}, "audio.output fields")
    need(audio_in["format"] == PCM_GA, "input must be audio/pcm at 24 kHz", "audio.input.format")
    need(audio_out["format"] == PCM_GA, "output must be audio/pcm at 24 kHz", "audio.output")
    need(isinstance(audio_out["voice"], str) and audio_out["voice"], "voice", "voice")
    validate_vad(audio_in["turn_detection"])
    if "transcription" in audio_in:
        need(isinstance(audio_in["transcription"]["model"], str), "transcription.model")


def validate_beta_session(session: dict[str, Any]) -> None:
    need(set(session) <= BETA_SESSION_KEYS, f"unknown fields {set(session) - BETA_SESSION_KEYS}")
    need("audio" in session["modalities"], "modalities must include audio", "modalities")
    need(session["input_audio_format"] == "pcm16", "input must be pcm16", "input_audio_format")
    need(session["output_audio_format"] == "pcm16", "output must be pcm16", "output_audio_format")
    need(isinstance(session["instructions"], str), "instructions must be text", "instructions")
    need(isinstance(session["voice"], str) and session["voice"], "voice", "voice")
    validate_vad(session["turn_detection"])
    transcription = session["input_audio_transcription"]
    need(transcription is None or isinstance(transcription["model"], str), "transcription")


def validate_vad(vad: dict[str, Any] | None) -> None:
    if vad is None:
        return
    need(set(vad) <= VAD_KEYS and vad["type"] == "server_vad", "turn_detection", "turn_detection")
    need(0 <= vad["threshold"] <= 1, "threshold must be within 0-1", "threshold")
    need(isinstance(vad["prefix_padding_ms"], int), "prefix_padding_ms", "prefix_padding_ms")
    need(isinstance(vad["silence_duration_ms"], int), "silence_duration_ms")


def decode_pcm16(data: Any) -> np.ndarray:
    need(isinstance(data, str) and data, "audio must be a base64 string", "audio")
    try:
        raw = base64.b64decode(data, validate=True)
    except binascii.Error:
        raise Refused("audio is not valid base64", param="audio") from None
    need(len(raw) % 2 == 0, "audio must be whole 16-bit samples", "audio")
    return np.frombuffer(raw, dtype="<i2")


def tone(freq: float, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (8000 * np.sin(2 * np.pi * freq * t)).astype("<i2")
