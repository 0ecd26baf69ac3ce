"""A base for responders that listen in whole utterances: speech segments with their speaker."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel

from bridge.audio.segments import SegmentCollector
from bridge.audio.vad import SpeechStarted, SpeechStopped
from bridge.plugins.speakers import SpeakerTurns
from bridge.responder import Event, Responder, SessionHandle
from bridge.speech.stt import STT_RATE


@dataclass(frozen=True)
class Segment:
    """One utterance heard: 16 kHz samples, its span on the session timeline, who said it."""

    audio: np.ndarray
    start_ms: float
    end_ms: float
    speaker: str | None


class SegmentListener(Responder):
    """Collects each speech segment at 16 kHz and hands it to on_segment with its speaker.

    Options must have preroll_ms, tail_ms and max_segment_s.
    """

    sample_rate = STT_RATE

    def __init__(self, options: BaseModel, session: SessionHandle) -> None:
        super().__init__(options, session)
        self.turns = SpeakerTurns()
        o = options
        self._segments = SegmentCollector(
            20.0,
            o.preroll_ms,
            o.tail_ms,
            o.max_segment_s * 1000,  # type: ignore[attr-defined]
        )
        self._start_ms = 0.0

    async def on_audio(self, frame: np.ndarray) -> None:
        self._segments.frame_ms = 1000 * len(frame) / STT_RATE
        self._segments.add(frame)

    async def on_event(self, event: Event) -> None:
        if event["type"] == "speakers":
            self.turns.update(event["at_ms"], event["speakers"])

    async def on_speech_start(self, event: SpeechStarted) -> None:
        self._start_ms = event.at_ms
        self._segments.start(event.at_ms)

    async def on_speech_stop(self, event: SpeechStopped) -> None:
        audio = self._segments.stop(event.at_ms)
        if audio is not None:
            speaker = self.turns.main_speaker(self._start_ms, event.at_ms)
            await self.on_segment(Segment(audio, self._start_ms, event.at_ms, speaker))

    async def on_segment(self, segment: Segment) -> None:
        """A whole utterance was heard (called in the hook: start long work in a task)."""
