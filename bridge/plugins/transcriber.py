"""The `transcriber` responder: offline speech-to-text of each speech segment, per speaker.

Needs the optional extra: pip install 'speakbridge[stt]' (pocketsphinx, English model).
Each transcript is an event {"type": "transcript", "text", "speaker", "start_ms", "end_ms"},
streamed on the control channel and written by the recorder.
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, ConfigDict, Field

from bridge.plugins.listening import Segment, SegmentListener
from bridge.responder import SessionHandle
from bridge.speech.stt import check_pocketsphinx, transcribe


class TranscriberOptions(BaseModel):
    """Options of the transcriber."""

    model_config = ConfigDict(extra="forbid")

    preroll_ms: int = Field(300, ge=0, le=2000)
    tail_ms: int = Field(200, ge=0, le=1000)
    max_segment_s: float = Field(30.0, gt=0, le=120)


class TranscriberResponder(SegmentListener):
    """Transcribes speech segments with pocketsphinx and attributes them to the speaker."""

    Options = TranscriberOptions
    options: TranscriberOptions

    def __init__(self, options: TranscriberOptions, session: SessionHandle) -> None:
        super().__init__(options, session)
        self._work: set[asyncio.Task[None]] = set()

    @classmethod
    def check(cls, options: BaseModel) -> None:
        check_pocketsphinx()

    async def on_segment(self, segment: Segment) -> None:
        task = asyncio.create_task(self._transcribe(segment))
        self._work.add(task)
        task.add_done_callback(self._work.discard)

    async def on_stop(self) -> None:
        if self._work:
            await asyncio.gather(*self._work, return_exceptions=True)

    async def _transcribe(self, segment: Segment) -> None:
        try:
            text = await transcribe(segment.audio)
        except Exception:
            self.session.log.exception("transcription failed; this segment has no transcript")
            return
        if text:
            self.session.emit(
                "transcript",
                text=text,
                speaker=segment.speaker,
                start_ms=segment.start_ms,
                end_ms=segment.end_ms,
            )
