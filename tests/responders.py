"""Responders used by the tests: real plugins, loaded through the registry like a user's."""

from __future__ import annotations

import asyncio
import time
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from bridge.audio.playback import PlaybackReport
from bridge.audio.turns import TurnContinued, TurnEnded, TurnStarted
from bridge.audio.vad import SpeechStarted, SpeechStopped
from bridge.responder import Responder, SessionHandle
from bridge.wire.roster import Participant


class HookLog(Responder):
    """Writes every hook call into `calls[session_id]`."""

    calls: ClassVar[dict[str, list[tuple[str, object]]]] = {}

    def _log(self, hook: str, arg: object = None) -> None:
        self.calls.setdefault(self.session.session_id, []).append((hook, arg))

    async def on_start(self) -> None:
        self._log("start")

    async def on_audio(self, frame: np.ndarray) -> None:
        self._log("audio", len(frame))

    async def on_join(self) -> None:
        self._log("join")

    async def on_speakers(self, speakers: list[Participant]) -> None:
        self._log("speakers", [(s.name, s.is_speaking) for s in speakers])

    async def on_speech_start(self, event: SpeechStarted) -> None:
        self._log("speech_start", event)

    async def on_speech_stop(self, event: SpeechStopped) -> None:
        self._log("speech_stop", event)

    async def on_interrupted(self, report: PlaybackReport) -> None:
        self._log("interrupted", report)

    async def on_turn_start(self, event: TurnStarted) -> None:
        self._log("turn_start", event)

    async def on_turn_end(self, event: TurnEnded) -> None:
        self._log("turn_end", event)

    async def on_turn_continued(self, event: TurnContinued) -> None:
        self._log("turn_continued", event)

    async def on_stop(self) -> None:
        self._log("stop", self.session.bot_id)


class ToneOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = 3.0
    freq: float = 440.0


class Monologue(HookLog):
    """Speaks a long tone at 16 kHz as soon as the session starts, then logs like HookLog."""

    Options = ToneOptions
    options: ToneOptions
    sample_rate = 16000

    async def on_start(self) -> None:
        await super().on_start()
        t = np.arange(int(self.options.seconds * 16000)) / 16000
        self.utterance = self.session.speak(0.3 * np.sin(2 * np.pi * self.options.freq * t), 16000)


class Crashes(HookLog):
    """Raises in on_audio: the session must go on regardless."""

    async def on_audio(self, frame: np.ndarray) -> None:
        raise RuntimeError("responder bug")


class Hangs(HookLog):
    """Never returns from on_audio: its own queue fills, nobody else waits for it."""

    async def on_audio(self, frame: np.ndarray) -> None:
        await asyncio.Event().wait()


class RaisesEverywhere(Responder):
    """Raises in every hook, the constructor excepted."""

    async def on_start(self) -> None:
        raise RuntimeError("start")

    async def on_audio(self, frame: np.ndarray) -> None:
        raise RuntimeError("audio")

    async def on_speakers(self, speakers: list[Participant]) -> None:
        raise RuntimeError("speakers")

    async def on_speech_start(self, event: SpeechStarted) -> None:
        raise RuntimeError("speech_start")

    async def on_speech_stop(self, event: SpeechStopped) -> None:
        raise RuntimeError("speech_stop")

    async def on_event(self, event: dict) -> None:
        raise RuntimeError("event")

    async def on_stop(self) -> None:
        raise RuntimeError("stop")


class BlocksTheLoop(Responder):
    """CPU-bound code in an async hook: blocks the whole event loop for 0.6 s once."""

    blocked = False

    async def on_speech_start(self, event: SpeechStarted) -> None:
        if not self.blocked:
            self.blocked = True
            time.sleep(0.6)


class BurnsTheCore(Responder):
    """CPU-bound work on the loop: spins for most of each 20 ms frame it hears."""

    spin_s = 0.014

    async def on_audio(self, frame: np.ndarray) -> None:
        until = time.thread_time() + self.spin_s
        while time.thread_time() < until:
            pass


class KeepsACycle(Responder):
    """Holds itself in a reference cycle, as a user's responder may: once its session has
    ended, only a full collection frees it."""

    def __init__(self, options: BaseModel, session: SessionHandle) -> None:
        super().__init__(options, session)
        self.me = self
