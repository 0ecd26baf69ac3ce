"""A base for responders that listen in whole turns: the turn's audio with its speaker."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel

from bridge.audio.segments import SegmentCollector
from bridge.audio.turns import TurnContinued, TurnEnded, TurnStarted
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
    """Collects each turn at 16 kHz and hands it to on_segment with its speaker. A turn the
    speaker continues comes again when it ends again, whole (from its first start).

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
        self._so_far: Segment | None = None  # the turn handed over, while it may go on

    async def on_audio(self, frame: np.ndarray) -> None:
        self._segments.frame_ms = 1000 * len(frame) / STT_RATE
        self._segments.add(frame)

    async def on_event(self, event: Event) -> None:
        if event["type"] == "speakers":
            self.turns.update(event["at_ms"], event["speakers"])

    async def on_turn_start(self, event: TurnStarted) -> None:
        self._start_ms = event.at_ms
        self._so_far = None
        self._segments.start(event.at_ms)

    async def on_turn_continued(self, event: TurnContinued) -> None:
        self._segments.start(event.at_ms)

    async def on_turn_end(self, event: TurnEnded) -> None:
        audio = self._segments.stop(event.end_ms)
        if audio is None:
            return
        start = self._start_ms
        if self._so_far is not None:
            audio = np.concatenate((self._so_far.audio, audio))
            start = self._so_far.start_ms
        speaker = self.turns.main_speaker(start, event.end_ms)
        self._so_far = Segment(audio, start, event.end_ms, speaker)
        await self.on_segment(self._so_far)

    async def on_segment(self, segment: Segment) -> None:
        """A whole turn was heard (called in the hook: start long work in a task); after a
        TurnContinued, the same turn again, longer."""
