"""The responder API: the Responder base class, the SessionHandle it speaks through, and the
events and reports it is handed. The server and the plugins both import this module; it
imports nothing of the server at run time (the playout and event hub only as types).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from bridge.audio.playback import PlaybackReport
from bridge.audio.turns import TurnContinued, TurnEnded, TurnStarted
from bridge.audio.vad import SpeechStarted, SpeechStopped
from bridge.wire.protocol import SpeakerState
from bridge.wire.roster import Participant

if TYPE_CHECKING:
    from bridge.server.events import EventHub
    from bridge.server.playout import AudioSource, Playout, SpeechStream, Utterance

Event = dict[str, Any]  # a session event: {"type", "session", "time", ...fields}

__all__ = [
    "Event",
    "NoOptions",
    "Participant",
    "PlaybackReport",
    "Responder",
    "SessionHandle",
    "SessionInfo",
    "SpeakerState",
    "SpeechStarted",
    "SpeechStopped",
    "TurnContinued",
    "TurnEnded",
    "TurnStarted",
]


class NoOptions(BaseModel):
    """Options model of a responder that takes none; unknown options are an error."""

    model_config = ConfigDict(extra="forbid")


class SessionLog(logging.LoggerAdapter):
    """A logger that puts the session id in front of every line."""

    def __init__(self, logger: logging.Logger, session_id: str) -> None:
        super().__init__(logger, {"session": session_id})

    def process(self, msg: object, kwargs: Any) -> tuple[object, Any]:
        return f"session {self.extra['session']}: {msg}", kwargs  # type: ignore[index]


@dataclass
class SessionInfo:
    """What is known of the session, shared by its responders and kept current by the session."""

    session_id: str
    bot_rate: int
    bot_id: str | None = None
    user_speaking: bool = False  # the VAD hears speech now (set before responders hear of it)
    participants: dict[str, Participant] = field(default_factory=dict)  # by Participant.key

    def speaking(self) -> list[Participant]:
        """Participants the bot last reported as speaking, the bot itself left out."""
        return [p for p in self.participants.values() if p.speaking and not p.is_self]


class SessionHandle:
    """A responder's view of its session: who is in it, and how to speak, stop or tell."""

    def __init__(
        self,
        info: SessionInfo,
        playout: Playout,
        events: EventHub,
        on_drop: Callable[[str, int], None],
    ) -> None:
        self.info = info
        self.log = SessionLog(logging.getLogger("bridge.responder"), info.session_id)
        self._playout = playout
        self._events = events
        self._on_drop = on_drop
        self.owner: object = None  # the responder, set by the session

    def release(self) -> None:
        """The session has ended: drop the way back to it and to the responder (a cycle)."""
        self._on_drop = _ignore_drop
        self.owner = None

    @property
    def session_id(self) -> str:
        return self.info.session_id

    @property
    def bot_rate(self) -> int:
        return self.info.bot_rate

    @property
    def bot_id(self) -> str | None:
        return self.info.bot_id

    def speak(self, audio: AudioSource, sample_rate: int | None = None) -> Utterance:
        """Queue speech (s16le bytes, an s16 or float array, or an async iterator of them).

        Returns at once; await the Utterance for what was played. Barge-in may cut it short.
        """
        return self._playout.speak(audio, sample_rate)

    async def open_stream(self, sample_rate: int | None = None) -> SpeechStream:
        """Speech written chunk by chunk with SpeechStream.write() (no await: for live audio,
        such as an echo); close() ends it. Waits for the speech queued before it."""
        return await self._playout.open_stream(sample_rate)

    def interrupt(self) -> list[PlaybackReport]:
        """Stop speaking now: queued audio is dropped; at most the pacing lead still plays."""
        return self._playout.interrupt()

    @property
    def speaking(self) -> bool:
        return self._playout.speaking

    def output_delay(self) -> float:
        """Seconds that audio spoken now would wait before it is sent to the bot."""
        return self._playout.delay()

    def drop_input(self, reason: str, samples: int) -> None:
        """Count input audio this responder dropped: logged once, in /metrics and the summary."""
        self._on_drop(reason, samples)

    def emit(self, kind: str, **fields: Any) -> Event:
        """Publish an event to the control channel and the session's other responders."""
        return self._events.publish(kind, self.owner, **fields)


class Responder:
    """Base class of responder plugins; override the hooks you need (all default to no-op).

    Hooks run one at a time, in order, in the responder's own task: a slow hook delays
    only this responder's input, whose queue is bounded (overflowing items are counted).
    A hook overridden as a plain `def` runs inline as its input arrives (no task switch);
    it must be quick, as the loop waits for it.
    """

    Options: ClassVar[type[BaseModel]] = NoOptions
    sample_rate: int | None = None  # rate of the frames on_audio gets; None: the bot's rate
    interruptible: bool = True  # user speech while the bot speaks triggers barge-in
    min_interruption_ms: float = 500.0  # speech this long over the bot commits a barge-in
    resume_timeout_s: float = 2.0  # the longest the bot's speech stays paused, deciding
    audio_blocks: bool = False  # on_audio gets a chunk's whole frames in one array, not each
    hears_bot: bool = False  # on_bot_audio gets every message of speech sent to the bot
    loopback: bool = False  # output sample i is input sample i: the session measures latency
    commands: ClassVar[frozenset[str]] = frozenset()  # control commands it handles ("say"...)

    def __init__(self, options: BaseModel, session: SessionHandle) -> None:
        self.options = options
        self.session = session

    @property
    def hooks(self) -> frozenset[str]:
        """The hooks (names without on_) the session calls: by default those this class
        overrides. The others cost nothing, not even a queue entry; start and stop always run."""
        return overridden_hooks(type(self))

    @classmethod
    def check(cls, options: BaseModel) -> None:
        """Raise ValueError at start if the responder cannot work here (a missing program)."""

    async def on_start(self) -> None:
        """The session began: the bot said hello (or sent audio), so `bot_rate` is known. The
        bot may still be in the waiting room: greet in on_join."""

    async def on_join(self) -> None:
        """The bot is in the call (first meeting audio with signal, a roster, or a webhook):
        what is spoken now is heard. Speech queued before waits for this moment."""

    async def on_audio(self, frame: np.ndarray) -> None:
        """One fixed frame of meeting audio (s16, this responder's rate); the array is yours.
        With `audio_blocks`, all the whole frames of a bot's chunk at once (one call a chunk)."""

    async def on_speakers(self, participants: list[Participant]) -> None:
        """The bot sent its roster (the whole of it, on any change); `is_self` marks the bot."""

    async def on_speech_start(self, event: SpeechStarted) -> None:
        """The VAD heard speech begin (the event lags the audio by the VAD's start window)."""

    async def on_speech_stop(self, event: SpeechStopped) -> None:
        """The VAD heard speech end."""

    async def on_turn_start(self, event: TurnStarted) -> None:
        """The user's turn began: speech that is not a backchannel over the bot's speech."""

    async def on_turn_end(self, event: TurnEnded) -> None:
        """The user's turn is over (the endpointing delay passed): the moment to answer it."""

    async def on_turn_continued(self, event: TurnContinued) -> None:
        """The user resumed the turn that just ended: withdraw the answer to it (what was
        already queued is interrupted) and wait for its new end, which covers the whole turn."""

    async def on_interrupted(self, report: PlaybackReport) -> None:
        """Barge-in cut an utterance short; report says how much of it reached the bot."""

    async def on_bot_audio(self, frame: np.ndarray, at_sample: int) -> None:
        """Speech sent to the bot in one message (bot rate, whole frames but the end of an
        utterance), at_sample: meeting samples heard by then."""

    async def on_event(self, event: Event) -> None:
        """Any session event (speakers, speech, utterances, transcripts...) not emitted by self."""

    async def on_command(self, command: Event) -> None:
        """A control-channel command of a type listed in `commands`, already validated."""

    async def on_stop(self) -> None:
        """The session ended; release resources here."""


@functools.cache
def overridden_hooks(cls: type[Responder]) -> frozenset[str]:
    """The hooks (names without on_) that cls defines otherwise than Responder."""
    return frozenset(
        name.removeprefix("on_")
        for name, default in vars(Responder).items()
        if name.startswith("on_") and getattr(cls, name) is not default
    )


def _ignore_drop(reason: str, samples: int) -> None:
    """What a released handle calls in place of its session's drop count."""
