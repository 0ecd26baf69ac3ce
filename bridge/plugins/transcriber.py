"""The `transcriber` responder: offline speech-to-text of each speech segment, per speaker.

Needs the optional extra: pip install 'speakbridge[stt]' (pocketsphinx, English model).
Each transcript is an event {"type": "transcript", "text", "speaker", "start_ms", "end_ms"},
streamed on the control channel and written by the recorder.
"""

from __future__ import annotations

import asyncio

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from bridge.audio.segments import SegmentCollector
from bridge.audio.vad import SpeechStarted, SpeechStopped
from bridge.events import Event
from bridge.plugins.base import Responder, SessionHandle
from bridge.stt import STT_RATE, check_pocketsphinx, transcribe


class TranscriberOptions(BaseModel):
    """Options of the transcriber."""

    model_config = ConfigDict(extra="forbid")

    preroll_ms: int = Field(300, ge=0, le=2000)
    tail_ms: int = Field(200, ge=0, le=1000)
    max_segment_s: float = Field(30.0, gt=0, le=120)


class SpeakerTurns:
    """Who spoke when, on the session's timeline, from the bot's speaker events."""

    def __init__(self) -> None:
        self._turns: dict[str, list[list[float]]] = {}  # name -> [[start_ms, end_ms], ...]

    def update(self, at_ms: float, speakers: list[dict]) -> None:
        for speaker in speakers:
            turns = self._turns.setdefault(speaker["name"], [])
            open_turn = bool(turns) and turns[-1][1] == float("inf")
            if speaker["isSpeaking"] and not open_turn:
                turns.append([at_ms, float("inf")])
            elif not speaker["isSpeaking"] and open_turn:
                turns[-1][1] = at_ms

    def main_speaker(self, start_ms: float, end_ms: float) -> str | None:
        """The participant who spoke longest within [start_ms, end_ms], else the last before."""
        best, best_overlap, last, last_start = None, 0.0, None, -1.0
        for name, turns in self._turns.items():
            overlap = sum(max(0.0, min(end_ms, e) - max(start_ms, s)) for s, e in turns)
            if overlap > best_overlap:
                best, best_overlap = name, overlap
            for s, _ in turns:
                if last_start < s <= start_ms:
                    last, last_start = name, s
        return best or last


class TranscriberResponder(Responder):
    """Transcribes speech segments with pocketsphinx and attributes them to the speaker."""

    Options = TranscriberOptions
    options: TranscriberOptions
    sample_rate = STT_RATE

    def __init__(self, options: TranscriberOptions, session: SessionHandle) -> None:
        super().__init__(options, session)
        self.turns = SpeakerTurns()
        frame_ms = 20.0  # corrected on the first frame
        self._segments = SegmentCollector(
            frame_ms, options.preroll_ms, options.tail_ms, options.max_segment_s * 1000
        )
        self._start_ms = 0.0
        self._work: set[asyncio.Task[None]] = set()

    @classmethod
    def check(cls, options: BaseModel) -> None:
        check_pocketsphinx()

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
            task = asyncio.create_task(self._transcribe(audio, self._start_ms, event.at_ms))
            self._work.add(task)
            task.add_done_callback(self._work.discard)

    async def on_stop(self) -> None:
        if self._work:
            await asyncio.gather(*self._work, return_exceptions=True)

    async def _transcribe(self, audio: np.ndarray, start_ms: float, end_ms: float) -> None:
        text = await transcribe(audio)
        if text:
            speaker = self.turns.main_speaker(start_ms, end_ms)
            self.session.emit(
                "transcript", text=text, speaker=speaker, start_ms=start_ms, end_ms=end_ms
            )
