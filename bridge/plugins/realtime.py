"""The `realtime` responder: the bot talks through a speech-to-speech model over the OpenAI
Realtime WebSocket protocol (OpenAI, Azure, and the servers and proxies that speak it).

Meeting audio goes to the model as it is heard (24 kHz PCM16); the model's audio deltas are
played as they come. Turns are the bridge's (its turn_end commits the turn and asks for the
reply) or the model's own server VAD. When the meeting cuts a reply, the model is
told exactly how much of it was heard (conversation.item.truncate), so its context matches
what the meeting heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from bridge.audio.turns import TurnContinued, TurnEnded, TurnStarted
from bridge.responder import Event, Participant, Responder, SessionHandle
from bridge.speech.realtime_client import ConnectSettings, RealtimeClient
from bridge.speech.realtime_protocol import (
    MIN_COMMIT_MS,
    REALTIME_RATE,
    AudioDelta,
    AudioDone,
    InputCommitted,
    ReplyLedger,
    ResponseDone,
    ResponseStarted,
    ServerError,
    ServerEvent,
    SessionConfig,
    SpeechBegan,
    Transcript,
    append_audio,
    commit_audio,
    create_response,
    realtime_url,
    session_update,
    text_item,
)

if TYPE_CHECKING:
    from bridge.audio.playback import PlaybackReport
    from bridge.server.playout import Utterance

SAY = 'Say exactly this to the meeting, word for word, and nothing else: "{text}"'
INTERRUPTED_MARK = " [interrupted]"
ITEM_SPEAKERS_KEPT = 64  # committed user items awaiting their transcript's speaker name


@dataclass
class Said:
    """One transcript of the conversation, kept to replay to the model after a reconnect."""

    role: Literal["user", "assistant"]
    text: str
    item_id: str


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


class RealtimeOptions(BaseModel):
    """Options of the realtime responder; endpoint, key and model default to OPENAI_* variables."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(
        default_factory=lambda: _env("OPENAI_BASE_URL", "https://api.openai.com/v1"),
        description="the API's base URL; its /realtime WebSocket is used (http(s) -> ws(s))",
    )
    api_key: SecretStr | None = Field(default_factory=lambda: _env("OPENAI_API_KEY"))
    model: str = Field(default_factory=lambda: _env("OPENAI_REALTIME_MODEL", "gpt-realtime"))
    voice: str = "alloy"
    instructions: str = (
        "You are a helpful voice assistant taking part in a video meeting. System messages "
        "tell you who is speaking. Answer briefly, in plain spoken sentences."
    )
    turn_detection: Literal["bridge", "server_vad"] = Field(
        "bridge", description="bridge: the bridge's VAD ends turns; server_vad: the model's"
    )
    dialect: Literal["ga", "beta"] = Field(
        "ga", description="ga: the current API; beta: OpenAI-Beta: realtime=v1 servers"
    )
    transcription_model: str | None = Field(
        "gpt-4o-mini-transcribe", description="transcribes the meeting's side; empty: none"
    )
    vad_threshold: float = Field(0.5, ge=0, le=1, description="server_vad: activation level")
    vad_prefix_ms: int = Field(300, ge=0, le=2000, description="server_vad: audio before speech")
    vad_silence_ms: int = Field(
        500, ge=100, le=5000, description="server_vad: silence ending a turn"
    )
    preroll_ms: int = Field(
        300, ge=0, le=2000, description="bridge turns: audio before the speech start sent too"
    )
    connect_timeout_s: float = Field(10.0, gt=0)
    ping_interval_s: float = Field(20.0, gt=0)
    ping_timeout_s: float = Field(20.0, gt=0, description="no pong this long: reconnect")
    backoff_s: float = Field(0.5, gt=0, description="first reconnect delay, doubled per failure")
    max_backoff_s: float = Field(30.0, gt=0)
    send_queue_events: int = Field(
        250, ge=10, le=10000, description="events waiting for the model's socket; beyond: dropped"
    )
    reply_buffer_s: float = Field(
        120.0, gt=0, le=3600, description="reply audio received and waiting to be played"
    )
    max_history: int = Field(40, ge=0, le=500, description="transcripts replayed on reconnect")
    max_pending_responses: int = Field(
        4, ge=1, le=64, description="replies (turns, say) waiting for the current one to end"
    )

    @field_validator("transcription_model")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None


class ReplyBacklog:
    """One reply item's audio between the model's socket and the playout, bounded in samples.

    The model sends audio faster than real time; the playout takes it as it plays.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.samples = 0
        self.closed = False
        self._chunks: deque[np.ndarray] = deque()
        self._ready = asyncio.Event()

    def put(self, chunk: np.ndarray) -> int:
        """Queue what fits of chunk; returns the samples that did not (dropped: count them)."""
        room = max(0, self.capacity - self.samples)
        kept = chunk[:room]
        if len(kept):
            self._chunks.append(kept)
            self.samples += len(kept)
            self._ready.set()
        return len(chunk) - len(kept)

    def close(self) -> None:
        """No more audio: the playout ends the utterance once it has taken what is queued."""
        self.closed = True
        self._ready.set()

    async def chunks(self) -> AsyncIterator[np.ndarray]:
        while True:
            while self._chunks:
                chunk = self._chunks.popleft()
                self.samples -= len(chunk)
                yield chunk
            if self.closed:
                return
            self._ready.clear()
            await self._ready.wait()


class Reply:
    """A reply item being played: its backlog, and the utterance the playout made of it."""

    def __init__(self, response_id: str, backlog: ReplyBacklog, utterance: Utterance) -> None:
        self.response_id = response_id
        self.backlog = backlog
        self.utterance = utterance


class RealtimeResponder(Responder):
    """Streams the meeting to a Realtime model and plays its replies; cuts are told exactly."""

    Options = RealtimeOptions
    options: RealtimeOptions
    sample_rate = REALTIME_RATE  # the session resamples the meeting to 24 kHz for on_audio
    commands = frozenset({"say"})

    def __init__(self, options: RealtimeOptions, session: SessionHandle) -> None:
        super().__init__(options, session)
        o = options
        self._server_vad = o.turn_detection == "server_vad"
        self._config = SessionConfig(
            voice=o.voice,
            instructions=o.instructions,
            server_vad=self._server_vad,
            transcription_model=o.transcription_model,
            vad_threshold=o.vad_threshold,
            vad_prefix_ms=o.vad_prefix_ms,
            vad_silence_ms=o.vad_silence_ms,
            dialect=o.dialect,
        )
        headers = {}
        if o.api_key is not None:
            headers["Authorization"] = f"Bearer {o.api_key.get_secret_value()}"
        if o.dialect == "beta":
            headers["OpenAI-Beta"] = "realtime=v1"
        settings = ConnectSettings(
            open_timeout_s=o.connect_timeout_s,
            ping_interval_s=o.ping_interval_s,
            ping_timeout_s=o.ping_timeout_s,
            backoff_s=o.backoff_s,
            max_backoff_s=o.max_backoff_s,
            send_queue=o.send_queue_events,
        )
        self.client = RealtimeClient(
            realtime_url(o.base_url, o.model),
            headers,
            settings,
            self._opening,
            self._model_event,
            self._model_down,
            name=f"session {session.session_id}: realtime",
        )
        self.ledger = ReplyLedger()
        self.replies: dict[str, Reply] = {}
        self.history: deque[Said] = deque(maxlen=o.max_history)
        self._task: asyncio.Task[None] | None = None
        self._heard = 0  # samples of meeting audio at 24 kHz so far
        self._appended = 0  # samples appended since the last commit
        self._in_turn = False  # bridge turns: the VAD hears speech; audio streams to the model
        # frames before a bridge turn starts (the preroll plus the VAD's start window, at most
        # 1 s), or of a turn while the model is away; (end sample, frame)
        preroll_frames = (o.preroll_ms + 1000) // 10 + 1
        self._preroll: deque[tuple[int, np.ndarray]] = deque(maxlen=preroll_frames)
        self._speaker: str | None = None  # who the model was last told is speaking
        self._turn_speakers: deque[str | None] = deque(maxlen=ITEM_SPEAKERS_KEPT)  # commits
        self._item_speakers: dict[str, str] = {}  # user items awaiting their transcript
        self._waiting: deque[str | None] = deque()  # responses held back (their instructions)
        self._asked = 0  # response.create events sent, for their event ids
        self._errors_logged: set[str] = set()

    @classmethod
    def check(cls, options: BaseModel) -> None:
        assert isinstance(options, RealtimeOptions)
        realtime_url(options.base_url, options.model)  # a bad scheme raises ValueError here
        if options.api_key is None and "api.openai.com" in options.base_url:
            raise ValueError("set OPENAI_API_KEY (or -o api_key=...), or point base_url elsewhere")

    # hooks

    async def on_start(self) -> None:
        self._task = asyncio.create_task(self.client.run(), name="realtime-client")

    def on_audio(self, frame: np.ndarray) -> None:  # plain: runs inline, no task switch
        self._heard += len(frame)
        if self._server_vad or self._in_turn:
            self._stream(frame)
        else:
            self._preroll.append((self._heard, frame))

    async def on_speakers(self, participants: list[Participant]) -> None:
        talking = [p.name for p in participants if p.speaking and not p.is_self]
        if talking and self._speaker not in talking:
            self._speaker = talking[0]
            if self.client.connected:
                self.client.send(self._speaker_context())

    async def on_turn_start(self, event: TurnStarted) -> None:
        if self._server_vad:
            return
        # a turn started before the reply could be heard: what the model is making is stale
        # (a reply being heard was cut by barge-in, which tells the model itself)
        if not self.session.speaking and self.ledger.busy:
            self._cut_reply()
        self._open_turn(event.at_ms - self.options.preroll_ms)

    async def on_turn_continued(self, event: TurnContinued) -> None:
        # the user went on after the turn was committed: the model's reply to the half turn
        # is cut (the session withdrew what was heard of it); the rest goes as the turn's
        # next item, answered at the new turn_end
        if self._server_vad:
            return
        if self.ledger.busy:
            self._cut_reply()
        self._open_turn(event.at_ms - self.options.preroll_ms)

    async def on_turn_end(self, event: TurnEnded) -> None:
        if self._server_vad or not self._in_turn:
            return
        self._in_turn = False
        if self._appended * 1000 < MIN_COMMIT_MS * REALTIME_RATE or not self.client.connected:
            return  # too little heard for the model to take as a turn
        if self.client.send(commit_audio()):
            self._appended = 0
            self._turn_speakers.append(self._speaker)  # named by the committed event's item
            self._ask()

    def _open_turn(self, from_ms: float) -> None:
        """Stream the turn from here on, and what was kept of it from from_ms."""
        self._in_turn = True
        for end, frame in self._preroll:
            if end * 1000 / REALTIME_RATE > from_ms:
                self._stream(frame)
        self._preroll.clear()

    async def on_command(self, command: Event) -> None:
        self._ask(SAY.format(text=command["text"]))

    async def on_stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for reply in self.replies.values():
            reply.backlog.close()

    # to the model

    def _stream(self, frame: np.ndarray) -> None:
        if not self.client.connected:
            self._hold(frame)
        elif not self.client.send(append_audio(frame)):
            self.session.drop_input("realtime_send_queue_full", len(frame))
        else:
            self._appended += len(frame)

    def _hold(self, frame: np.ndarray) -> None:
        """Keep a frame of the turn while the model is away, for when it is back; the oldest
        held give way (dropped, counted) after the preroll's length."""
        if len(self._preroll) == self._preroll.maxlen:
            self.session.drop_input("realtime_model_disconnected", len(self._preroll[0][1]))
        self._preroll.append((self._heard, frame))

    def _ask(self, instructions: str | None = None) -> None:
        """Ask for a response now, or once the response being made is done (or the model is
        back: a reconnect asks for the first one waiting)."""
        if not self.ledger.busy and self.client.connected:
            event = self._request(instructions)
            if self.client.send(event):
                return
            self.ledger.refused(event["event_id"])
        if len(self._waiting) >= self.options.max_pending_responses:
            self.session.log.warning(
                "realtime: %d replies already wait; this one is dropped", len(self._waiting)
            )
            self.session.emit("realtime_error", error="too many replies waiting; one dropped")
            return
        self._waiting.append(instructions)

    def _request(self, instructions: str | None) -> dict[str, Any]:
        """A response.create, counted by the ledger as asked for."""
        self._asked += 1
        event_id = f"speakbridge_response_{self._asked}"
        self.ledger.request(event_id)
        return create_response(event_id, instructions)

    def _speaker_context(self) -> dict[str, Any]:
        people = self.session.info.participants.values()
        roster = sorted({p.name for p in people if not p.is_self})
        text = f"Now speaking: {self._speaker}."
        if roster:
            text += f" In the meeting: {', '.join(roster)}."
        return text_item("system", text, self.options.dialect)

    def _opening(self) -> list[dict[str, Any]]:
        """Each connection's first events: the session, what was said so far, who speaks."""
        self.ledger.reset()
        self._appended = 0
        self._turn_speakers.clear()
        events = [session_update(self._config)]
        events += [text_item(s.role, s.text, self.options.dialect) for s in self.history]
        if self._speaker is not None:
            events.append(self._speaker_context())
        if self._server_vad or self._in_turn:  # what was held while the model was away
            events += [append_audio(frame) for _, frame in self._preroll]
            self._appended = sum(len(frame) for _, frame in self._preroll)
            self._preroll.clear()
        if self._waiting:
            events.append(self._request(self._waiting.popleft()))
        self.session.emit("realtime_connected", url=self.client.url, replayed=len(self.history))
        return events

    # from the model

    def _model_event(self, event: ServerEvent) -> None:
        if isinstance(event, AudioDelta):
            self._play(event)
        elif isinstance(event, AudioDone):
            if (reply := self.replies.get(event.item_id)) is not None:
                reply.backlog.close()
        elif isinstance(event, ResponseStarted):
            self._send_all(self.ledger.started(event.response_id))
        elif isinstance(event, ResponseDone):
            self._response_done(event)
        elif isinstance(event, Transcript):
            self._transcript(event)
        elif isinstance(event, InputCommitted):
            self._committed(event.item_id)
        elif isinstance(event, SpeechBegan):
            self._model_heard_speech()
        elif isinstance(event, ServerError):
            self._model_error(event)

    def _play(self, delta: AudioDelta) -> None:
        reply = self.replies.get(delta.item_id)
        if reply is not None and reply.utterance.report.done():
            if reply.utterance.report.result().interrupted:
                self._cut_reply()  # cut before its report's callback ran: tell the model now
            return
        if not self.ledger.audio(delta):
            return  # the response was cancelled or the item cut: its late audio is not played
        if reply is None:
            backlog = ReplyBacklog(int(self.options.reply_buffer_s * REALTIME_RATE))
            try:
                utterance = self.session.speak(backlog.chunks(), REALTIME_RATE)
            except RuntimeError as exc:  # the playout's max_pending
                self.session.drop_input("realtime_reply_refused", len(delta.audio))
                self.session.log.warning("realtime: a reply cannot be played: %s", exc)
                return
            reply = self.replies[delta.item_id] = Reply(delta.response_id, backlog, utterance)
            utterance.report.add_done_callback(lambda _, item=delta.item_id: self._played(item))
        if lost := reply.backlog.put(delta.audio):
            self.session.drop_input("realtime_reply_buffer_full", lost)

    def _played(self, item_id: str) -> None:
        """A reply's utterance ended: played through, or cut (then the model is told)."""
        reply = self.replies.get(item_id)
        if reply is None:
            return
        if reply.utterance.report.result().interrupted:
            self._cut_reply()
        else:
            del self.replies[item_id]
            self.ledger.forget(item_id)

    def _cut_reply(self) -> None:
        """The meeting stopped hearing the model: cancel what it makes, truncate what it said
        to what was heard (the playback reports' samples sent to the bot)."""
        events = self.ledger.cancel()
        for item_id, reply in list(self.replies.items()):
            if not reply.utterance.report.done():
                continue
            report: PlaybackReport = reply.utterance.report.result()
            if not report.interrupted:
                continue
            heard_ms = report.sent * 1000 / self.session.bot_rate
            events += self.ledger.truncate(item_id, heard_ms)
            reply.backlog.close()
            del self.replies[item_id]
            self._mark_interrupted(item_id, heard_ms)
        self._send_all(events)

    def _send_all(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            if not self.client.send(event):
                self.session.log.warning(
                    "realtime: the model's socket is down or behind; %s not sent", event["type"]
                )

    def _mark_interrupted(self, item_id: str, heard_ms: float) -> None:
        for said in self.history:
            if said.item_id == item_id and not said.text.endswith(INTERRUPTED_MARK):
                said.text += INTERRUPTED_MARK
        self.session.emit("reply_interrupted", item_id=item_id, heard_ms=round(heard_ms))

    def _committed(self, item_id: str) -> None:
        """The meeting's turn became item item_id: its transcript will name this speaker."""
        bridge_commit = not self._server_vad and self._turn_speakers
        speaker = self._turn_speakers.popleft() if bridge_commit else self._speaker
        if speaker is not None and self.options.transcription_model is not None:
            self._item_speakers[item_id] = speaker
            while len(self._item_speakers) > ITEM_SPEAKERS_KEPT:
                del self._item_speakers[next(iter(self._item_speakers))]

    def _model_heard_speech(self) -> None:
        """The model's VAD heard the meeting speak: it cancels its own reply; stop playing it."""
        self.ledger.cancel()  # the server cancels it itself (interrupt_response)
        self.session.interrupt()  # the cut utterances' reports tell the model what was heard

    def _response_done(self, event: ResponseDone) -> None:
        self.ledger.done(event.response_id)
        for reply in self.replies.values():
            if reply.response_id == event.response_id:
                reply.backlog.close()
        if event.status not in ("completed", "cancelled"):
            self.session.emit("realtime_error", error=f"response {event.status}")
        if self._waiting and not self.ledger.busy:
            self._ask(self._waiting.popleft())

    def _transcript(self, event: Transcript) -> None:
        if event.role == "user":
            speaker = self._item_speakers.pop(event.item_id, None) or "Participant"
            self.history.append(Said("user", f"{speaker}: {event.text}", event.item_id))
        else:
            speaker = "bot"
            self.history.append(Said("assistant", event.text, event.item_id))
        self.session.emit(
            "transcript",
            text=event.text,
            speaker=speaker,
            role=event.role,
            item_id=event.item_id,
        )

    def _model_error(self, error: ServerError) -> None:
        self.ledger.refused(error.event_id)
        if error.code == "response_cancel_not_active":
            return  # the model ended the response (its own VAD cut it) before our cancel came
        key = error.code or error.kind
        if key not in self._errors_logged:
            self._errors_logged.add(key)
            self.session.log.warning(
                "realtime: the model reports %s: %s (more of this code are not logged)",
                key,
                error.message,
            )
        self.session.emit("realtime_error", error=error.message, code=error.code)

    def _model_down(self, reason: str, retry_in: float | None) -> None:
        for reply in self.replies.values():
            reply.backlog.close()  # what came still plays; the rest of the reply is lost
        if retry_in is None:
            self.session.log.error("realtime: %s; giving up (the session goes on, silent)", reason)
        else:
            self.session.log.warning("realtime: %s; reconnecting in %.1f s", reason, retry_in)
        self.session.emit(
            "realtime_disconnected",
            reason=reason,
            retry_in_s=None if retry_in is None else round(retry_in, 2),
        )
