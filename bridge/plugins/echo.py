"""The `echo` responder: says back each whole turn when it ends (or live, frame by frame)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from bridge.audio.catchup import CatchUp
from bridge.audio.playback import PlaybackReport
from bridge.audio.segments import SegmentCollector
from bridge.audio.turns import TurnContinued, TurnEnded, TurnStarted
from bridge.responder import Responder, SessionHandle

if TYPE_CHECKING:
    from bridge.server.playout import SpeechStream

SILENT = 32  # -60 dBFS: the preroll's samples below this before the first sound are not said


def without_leading_silence(audio: np.ndarray) -> np.ndarray:
    """The audio from its first sample above SILENT on (all of it if none is): a reply that
    begins with the preroll's silence would only begin later."""
    sound = np.flatnonzero(np.abs(audio) > SILENT)
    return audio[sound[0] :] if len(sound) else audio


class EchoOptions(BaseModel):
    """Options of the echo responder."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["utterance", "live"] = "utterance"
    preroll_ms: int = Field(300, ge=0, le=2000, description="audio kept from before speech start")
    tail_ms: int = Field(100, ge=0, le=1000, description="audio kept after speech stop")
    max_utterance_s: float = Field(30.0, gt=0, le=300, description="longest echo; longer is cut")
    live_max_backlog_ms: int = Field(
        1000, ge=100, le=10000, description="live: most echo queued; frames beyond are dropped"
    )
    live_catchup_s: float = Field(
        1.0, ge=0, le=60, description="live: echo queued this long is dropped (0: never)"
    )


class EchoResponder(Responder):
    """utterance mode: replies with each turn when it ends (works with barge-in); a turn the
    speaker continues is said back whole when it ends again (the session withdrew the half).

    live mode: loops every frame straight back (for latency tests); barge-in is off. A
    backlog that lasts live_catchup_s (after a stall) is dropped, counted, to keep the delay.
    """

    Options = EchoOptions
    options: EchoOptions

    def __init__(self, options: EchoOptions, session: SessionHandle) -> None:
        super().__init__(options, session)
        self._segments: SegmentCollector | None = None
        rate = session.bot_rate
        self._catchup = CatchUp(
            int(options.live_catchup_s * rate), options.live_max_backlog_ms * rate // 1000
        )
        self._live: SpeechStream | None = None
        self._turn_so_far: np.ndarray | None = None  # the turn said back, while it may go on

    @property
    def interruptible(self) -> bool:  # type: ignore[override]
        return self.options.mode == "utterance"

    @property
    def loopback(self) -> bool:  # type: ignore[override]
        return self.options.mode == "live"

    @property
    def audio_blocks(self) -> bool:  # type: ignore[override]
        return self.options.mode == "live"  # a chunk's frames go back in one write

    @property
    def hooks(self) -> frozenset[str]:  # type: ignore[override]
        if self.options.mode == "live":  # no turns: the audio, and an interrupt's end of it
            return frozenset({"audio", "interrupted"})
        return super().hooks

    async def on_start(self) -> None:
        if self.options.mode == "live":
            self._live = await self.session.open_stream()

    def on_audio(self, frame: np.ndarray) -> None:  # plain: runs inline, no task switch
        if (live := self._live) is not None:  # live: loop it back (a backlog is shed)
            waiting = int(self.session.output_delay() * self.session.bot_rate)
            if live.closed:  # only if the interrupt's event was dropped from a full queue
                self.session.drop_input("echo_live_interrupted", len(frame))
            elif not self._catchup.keep(waiting, len(frame)):
                self.session.drop_input("echo_live_behind", len(frame))
            elif lost := live.write(frame):
                self.session.drop_input("echo_live_queue_full", lost)
            return
        if self._segments is None:
            o = self.options
            frame_ms = 1000 * len(frame) / self.session.bot_rate
            self._segments = SegmentCollector(
                frame_ms, o.preroll_ms, o.tail_ms, o.max_utterance_s * 1000
            )
        cut = self._segments.frames_cut
        self._segments.add(frame)
        if self._segments.frames_cut > cut:
            self.session.drop_input("echo_utterance_too_long", len(frame))

    async def on_interrupted(self, report: PlaybackReport) -> None:
        # A control `interrupt` ends the live stream (queued before any later frame): the
        # echo goes on in a new one.
        if self._live is not None and self._live.closed:
            self._live = await self.session.open_stream()

    async def on_turn_start(self, event: TurnStarted) -> None:
        self._turn_so_far = None
        if self._segments is not None:
            self._segments.start(event.at_ms)

    async def on_turn_continued(self, event: TurnContinued) -> None:
        if self._segments is not None:
            self._segments.start(event.at_ms)  # after what was said back: the rest of the turn

    async def on_turn_end(self, event: TurnEnded) -> None:
        if self._segments is None or (audio := self._segments.stop(event.end_ms)) is None:
            return
        if self._turn_so_far is not None:
            audio = np.concatenate((self._turn_so_far, audio))
        else:
            audio = without_leading_silence(audio)
        self._turn_so_far = audio
        self.session.speak(audio)

    async def on_stop(self) -> None:
        if self._live is not None:
            self._live.close()
