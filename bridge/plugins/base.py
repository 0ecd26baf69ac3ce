"""The Responder interface: what a plugin hears, and the handle it speaks through."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from bridge.audio.playback import PlaybackReport
from bridge.audio.vad import SpeechStarted, SpeechStopped
from bridge.playout import AudioSource, Playout, Utterance
from bridge.protocol import SpeakerState


class NoOptions(BaseModel):
    """Options model of a responder that takes none; unknown options are an error."""

    model_config = ConfigDict(extra="forbid")


class SessionLog(logging.LoggerAdapter):
    """A logger that puts the session id in front of every line."""

    def __init__(self, logger: logging.Logger, session_id: str) -> None:
        super().__init__(logger, {"session": session_id})

    def process(self, msg: object, kwargs: Any) -> tuple[object, Any]:
        return f"session {self.extra['session']}: {msg}", kwargs  # type: ignore[index]


class SessionHandle:
    """A responder's view of its session: who it is, and how to speak or stop speaking."""

    def __init__(self, session_id: str, bot_rate: int, playout: Playout) -> None:
        self.session_id = session_id
        self.bot_rate = bot_rate
        self.bot_id: str | None = None  # known once the bot's hello arrives
        self.log = SessionLog(logging.getLogger("bridge.responder"), session_id)
        self._playout = playout

    def speak(self, audio: AudioSource, sample_rate: int | None = None) -> Utterance:
        """Queue speech (s16le bytes, an s16 or float array, or an async iterator of them).

        Returns at once; await the Utterance for what was played. Barge-in may cut it short.
        """
        return self._playout.speak(audio, sample_rate)

    def interrupt(self) -> list[PlaybackReport]:
        """Stop speaking now: queued audio is dropped; at most the pacing lead still plays."""
        return self._playout.interrupt()

    @property
    def speaking(self) -> bool:
        return self._playout.speaking


class Responder:
    """Base class of responder plugins; override the hooks you need (all default to no-op).

    Hooks run one at a time, in order, in the session's responder task: a slow hook delays
    only this responder's input, whose queue is bounded (overflowing frames are counted).
    """

    Options: ClassVar[type[BaseModel]] = NoOptions
    sample_rate: int | None = None  # rate of the frames on_audio gets; None: the bot's rate
    interruptible: bool = True  # user speech while this responder speaks triggers barge-in

    def __init__(self, options: BaseModel, session: SessionHandle) -> None:
        self.options = options
        self.session = session

    async def on_start(self) -> None:
        """The session began (its first socket connected)."""

    async def on_audio(self, frame: np.ndarray) -> None:
        """One fixed frame of meeting audio (s16, this responder's rate); the array is yours."""

    async def on_speakers(self, speakers: list[SpeakerState]) -> None:
        """The bot reported a change of who is speaking."""

    async def on_speech_start(self, event: SpeechStarted) -> None:
        """The VAD heard speech begin (the event lags the audio by the VAD's start window)."""

    async def on_speech_stop(self, event: SpeechStopped) -> None:
        """The VAD heard speech end."""

    async def on_interrupted(self, report: PlaybackReport) -> None:
        """Barge-in cut an utterance short; report says how much of it reached the bot."""

    async def on_stop(self) -> None:
        """The session ended; release resources here."""
