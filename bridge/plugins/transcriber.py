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
from bridge.speakers import SpeakerTurns
from bridge.stt import STT_RATE, check_pocketsphinx, transcribe


class TranscriberOptions(BaseModel):
    """Options of the transcriber."""

    model_config = ConfigDict(extra="forbid")

    preroll_ms: int = Field(300, ge=0, le=2000)
    tail_ms: int = Field(200, ge=0, le=1000)
    max_segment_s: float = Field(30.0, gt=0, le=120)


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
        try:
            text = await transcribe(audio)
        except Exception:
            self.session.log.exception("transcription failed; this segment has no transcript")
            return
        if text:
            speaker = self.turns.main_speaker(start_ms, end_ms)
            self.session.emit(
                "transcript", text=text, speaker=speaker, start_ms=start_ms, end_ms=end_ms
            )
