"""The `recorder` responder: the meeting, the bot and the timeline of a session, streamed to disk.

Per session, in `dir/{session_id}/`: `meeting.wav` (what the bot heard), `bot.wav` (what the
bot said, on the same timeline, silence between) and `timeline.jsonl` (one event a line:
speakers, speech segments, utterances, transcripts). Files are written as audio arrives,
so memory stays flat, and WAV headers are kept valid at every write.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TextIO

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from bridge.codecs.wav import WavWriter
from bridge.responder import Event, Responder, SessionHandle

SILENCE_BLOCK = 24000  # samples of zeros written at a time when padding bot.wav


class RecorderOptions(BaseModel):
    """Options of the recorder."""

    model_config = ConfigDict(extra="forbid")

    dir: Path = Field(Path("recordings"), description="one folder per session is made here")


class RecorderResponder(Responder):
    """Records; never speaks. Pair it with a speaker: --responder agent --responder recorder."""

    Options = RecorderOptions
    options: RecorderOptions
    hears_bot = True
    audio_blocks = True  # written as it comes: a chunk at a time

    def __init__(self, options: RecorderOptions, session: SessionHandle) -> None:
        super().__init__(options, session)
        self.folder = options.dir / session.session_id
        self._meeting: WavWriter | None = None
        self._bot: WavWriter | None = None
        self._timeline: TextIO | None = None
        self._silence = np.zeros(SILENCE_BLOCK, dtype=np.int16)

    async def on_start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        rate = self.session.bot_rate
        self._meeting = WavWriter(self.folder / "meeting.wav", rate)
        self._bot = WavWriter(self.folder / "bot.wav", rate)
        self._timeline = open(self.folder / "timeline.jsonl", "a", buffering=1)  # noqa: SIM115
        self.session.log.info("recording to %s", self.folder)

    async def on_audio(self, frame: np.ndarray) -> None:
        assert self._meeting is not None
        self._meeting.write(frame)

    async def on_bot_audio(self, frame: np.ndarray, at_sample: int) -> None:
        assert self._bot is not None
        self._pad_bot(at_sample)
        self._bot.write(frame)

    async def on_event(self, event: Event) -> None:
        assert self._timeline is not None
        self._timeline.write(json.dumps(event) + "\n")

    def after_session(self, event: Event) -> None:
        """An event after the session ended (the bot's final data): appended to the timeline."""
        with open(self.folder / "timeline.jsonl", "a") as timeline:
            timeline.write(json.dumps(event) + "\n")

    async def on_stop(self) -> None:
        if self._meeting is None or self._bot is None or self._timeline is None:
            return
        self._pad_bot(self._meeting.samples)
        for closable in (self._meeting, self._bot, self._timeline):
            closable.close()

    def _pad_bot(self, until: int) -> None:
        """Silence in bot.wav up to sample `until` of the meeting's timeline."""
        assert self._bot is not None
        while (gap := until - self._bot.samples) > 0:
            self._bot.write(self._silence[:gap])
