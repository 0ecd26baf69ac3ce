"""The `tts` responder: speaks text with espeak-ng: a greeting on joining, and `say` commands."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from bridge.responder import Event, Responder
from bridge.speech.tts import ESPEAK_RATE, check_espeak, espeak


class TtsOptions(BaseModel):
    """Options of the tts responder."""

    model_config = ConfigDict(extra="forbid")

    voice: str = Field("en-us", description="espeak-ng voice: a language (en-us, fr, de...)")
    speed: int = Field(160, ge=80, le=450, description="words per minute")
    pitch: int = Field(50, ge=0, le=99)
    greeting: str | None = Field(None, description="said when the bot is in the call")


class TtsResponder(Responder):
    """Speaks its greeting when the bot is in the call, and each `say` command's text."""

    Options = TtsOptions
    options: TtsOptions
    commands = frozenset({"say"})

    @classmethod
    def check(cls, options: BaseModel) -> None:
        check_espeak()

    async def on_join(self) -> None:
        if self.options.greeting:
            self.say(self.options.greeting)

    async def on_command(self, command: Event) -> None:
        self.say(command["text"], command.get("voice"), command.get("speed"))

    def say(self, text: str, voice: str | None = None, speed: int | None = None) -> None:
        """Queue text as speech, streamed from espeak-ng as it is synthesized."""
        o = self.options
        self.session.speak(espeak(text, voice or o.voice, speed or o.speed, o.pitch), ESPEAK_RATE)
        self.session.emit("bot_text", text=text)
