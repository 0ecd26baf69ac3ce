"""The `echo` responder: says back what it heard when the speaker pauses (or live, per frame)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from bridge.audio.vad import SpeechStarted, SpeechStopped
from bridge.plugins.base import Responder, SessionHandle


class EchoOptions(BaseModel):
    """Options of the echo responder."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["utterance", "live"] = "utterance"
    preroll_ms: int = Field(300, ge=0, le=2000, description="audio kept from before speech start")
    tail_ms: int = Field(100, ge=0, le=1000, description="audio kept after speech stop")
    max_utterance_s: float = Field(30.0, gt=0, le=300, description="longest echo; longer is cut")


class EchoResponder(Responder):
    """utterance mode: replies with each speech segment when it ends (works with barge-in).

    live mode: loops every frame straight back (for latency tests); barge-in is off.
    """

    Options = EchoOptions
    options: EchoOptions

    def __init__(self, options: EchoOptions, session: SessionHandle) -> None:
        super().__init__(options, session)
        self._frame_ms = 0.0
        self._position_ms = 0.0
        self._recent: deque[tuple[float, np.ndarray]] = deque()
        self._segment: list[tuple[float, np.ndarray]] | None = None
        self._live: asyncio.Queue[np.ndarray | None] = asyncio.Queue(maxsize=50)
        self.frames_dropped = 0

    @property
    def interruptible(self) -> bool:  # type: ignore[override]
        return self.options.mode == "utterance"

    async def on_start(self) -> None:
        if self.options.mode == "live":
            self.session.speak(self._live_frames())

    async def on_audio(self, frame: np.ndarray) -> None:
        self._frame_ms = 1000 * len(frame) / self.session.bot_rate
        if self.options.mode == "live":
            if self._live.full():
                self._drop("the live echo queue is full (playback is behind)")
            else:
                self._live.put_nowait(frame)
            return
        entry = (self._position_ms, frame)
        self._position_ms += self._frame_ms
        if self._segment is None:
            self._recent.append(entry)
            while self._recent and self._recent[0][0] < self._position_ms - self.options.preroll_ms:
                self._recent.popleft()
        elif len(self._segment) * self._frame_ms < self.options.max_utterance_s * 1000:
            self._segment.append(entry)
        else:
            self._drop(f"speech longer than max_utterance_s={self.options.max_utterance_s}")

    def _drop(self, why: str) -> None:
        if not self.frames_dropped:
            self.session.log.warning("echo drops frames: %s (further drops counted)", why)
        self.frames_dropped += 1

    async def on_speech_start(self, event: SpeechStarted) -> None:
        if self.options.mode == "utterance":
            keep_from = event.at_ms - self.options.preroll_ms
            self._segment = [e for e in self._recent if e[0] >= keep_from]
            self._recent.clear()

    async def on_speech_stop(self, event: SpeechStopped) -> None:
        if self._segment is None:
            return
        end = event.at_ms + self.options.tail_ms
        frames = [frame for at, frame in self._segment if at < end]
        self._segment = None
        if frames:
            self.session.speak(np.concatenate(frames))

    async def on_stop(self) -> None:
        if self.frames_dropped:
            self.session.log.warning("echo dropped %d frames in all", self.frames_dropped)
        if self.options.mode == "live" and not self._live.full():
            self._live.put_nowait(None)  # ends the live utterance

    async def _live_frames(self) -> AsyncIterator[np.ndarray]:
        while (frame := await self._live.get()) is not None:
            yield frame
