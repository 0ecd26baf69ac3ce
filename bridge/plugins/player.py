"""The `player` responder: plays a WAV into the meeting at start, on a schedule, or on command."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from bridge.codecs.wav import read_wav
from bridge.responder import Event, Responder, SessionHandle


class PlayerOptions(BaseModel):
    """Options of the player."""

    model_config = ConfigDict(extra="forbid")

    file: Path = Field(description="a 16-bit PCM WAV, any rate, mono or stereo")
    at_start: bool = Field(True, description="play it when the bot is in the call")
    every_s: float | None = Field(None, gt=0, description="play it again every so many seconds")


class PlayerResponder(Responder):
    """Plays its file; a control `play` command with neither path nor audio plays it too."""

    Options = PlayerOptions
    options: PlayerOptions
    commands = frozenset({"play"})

    def __init__(self, options: PlayerOptions, session: SessionHandle) -> None:
        super().__init__(options, session)
        self.samples, self.rate = read_wav(options.file)
        self._schedule: asyncio.Task[None] | None = None

    @classmethod
    def check(cls, options: BaseModel) -> None:
        assert isinstance(options, PlayerOptions)
        try:
            read_wav(options.file)
        except (OSError, ValueError, EOFError) as exc:
            raise ValueError(f"cannot read {options.file}: {exc}") from None

    async def on_join(self) -> None:
        if self.options.at_start:
            self.play()
        if self.options.every_s:
            self._schedule = asyncio.create_task(self._every(self.options.every_s))

    async def on_command(self, command: Event) -> None:
        self.play()

    def play(self) -> None:
        """Queue the file once."""
        self.session.speak(self.samples, self.rate)
        self.session.emit("play", file=str(self.options.file))

    async def on_stop(self) -> None:
        if self._schedule is not None:
            self._schedule.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._schedule

    async def _every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            self.play()
