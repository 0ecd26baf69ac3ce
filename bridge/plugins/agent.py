"""The `agent` responder: a voice agent. Speech-to-text, a streamed chat model, text-to-speech.

STT: pocketsphinx (offline) or an OpenAI-compatible /audio/transcriptions endpoint; the
chat model: an OpenAI-compatible /chat/completions endpoint, streamed; TTS: espeak-ng
(offline) or /audio/speech. It starts speaking at the first complete sentence of the
reply, stops at once on barge-in, and keeps the conversation, with speaker names.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from bridge.audio.playback import PlaybackReport
from bridge.audio.vad import SpeechStarted
from bridge.plugins.listening import Segment, SegmentListener
from bridge.responder import Event, SessionHandle
from bridge.retry import HttpError, RetryPolicy
from bridge.speech.openai_api import OPENAI_PCM_RATE, OpenAIClient
from bridge.speech.stt import STT_RATE, check_pocketsphinx, transcribe
from bridge.speech.tts import ESPEAK_RATE, check_espeak, espeak

SENTENCE_END = re.compile(r"(.+?[.!?…:;])(?=\s)\s*", re.S)
INTERRUPTED_MARK = " [interrupted]"

if TYPE_CHECKING:
    from bridge.server.playout import Utterance


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


class AgentOptions(BaseModel):
    """Options of the agent; the endpoint, key and model default to OPENAI_* variables."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(
        default_factory=lambda: _env("OPENAI_BASE_URL", "https://api.openai.com/v1")
    )
    api_key: SecretStr | None = Field(default_factory=lambda: _env("OPENAI_API_KEY"))
    chat_model: str = Field(default_factory=lambda: _env("OPENAI_CHAT_MODEL", "gpt-4o-mini"))
    system_prompt: str = (
        "You are a helpful voice assistant taking part in a video meeting. Participants' "
        "words come to you as 'Name: text'. Answer briefly, in plain spoken sentences."
    )
    stt: Literal["pocketsphinx", "api", "meetingbaas"] = Field(
        "pocketsphinx",
        description="meetingbaas: answer the transcripts the bot streams (launch --transcription)",
    )
    stt_model: str = "whisper-1"
    tts: Literal["espeak", "api"] = "espeak"
    tts_model: str = "tts-1"
    tts_voice: str = "alloy"
    espeak_voice: str = "en-us"
    espeak_speed: int = Field(165, ge=80, le=450)
    max_history: int = Field(20, ge=2, le=200, description="messages kept besides the system's")
    timeout_s: float = Field(30.0, gt=0)
    retries: int = Field(2, ge=0, le=10)
    preroll_ms: int = Field(300, ge=0, le=2000)
    tail_ms: int = Field(200, ge=0, le=1000)
    max_segment_s: float = Field(30.0, gt=0, le=120)


def complete_sentences(text: str) -> tuple[list[str], str]:
    """Split off the complete sentences at the start of text; returns them and the rest."""
    sentences, end = [], 0
    for match in SENTENCE_END.finditer(text):
        if match.start() != end:
            break
        sentences.append(match.group(1).strip())
        end = match.end()
    return sentences, text[end:]


class AgentResponder(SegmentListener):
    """Listens to each speech segment, answers it through the chat model, speaks the answer."""

    Options = AgentOptions
    options: AgentOptions

    def __init__(self, options: AgentOptions, session: SessionHandle) -> None:
        super().__init__(options, session)
        key = options.api_key.get_secret_value() if options.api_key else None
        self.api = OpenAIClient(
            options.base_url, key, options.timeout_s, RetryPolicy(retries=options.retries)
        )
        self.history: list[dict[str, str]] = []
        self._reply: asyncio.Task[None] | None = None
        self._reply_message: dict[str, str] | None = None  # the answer being spoken
        self._reply_sentences: list[tuple[Utterance, str]] = []

    @classmethod
    def check(cls, options: BaseModel) -> None:
        assert isinstance(options, AgentOptions)
        if options.stt == "pocketsphinx":  # meetingbaas and api need no local recognizer
            check_pocketsphinx()
        if options.tts == "espeak":
            check_espeak()
        if options.api_key is None and "api.openai.com" in options.base_url:
            raise ValueError("set OPENAI_API_KEY (or -o api_key=...), or point base_url elsewhere")

    def messages(self) -> list[dict[str, str]]:
        """What the chat model is sent: the system prompt and the recent conversation."""
        recent = self.history[-self.options.max_history :]
        return [{"role": "system", "content": self.options.system_prompt}, *recent]

    async def on_speech_start(self, event: SpeechStarted) -> None:
        await super().on_speech_start(event)
        if self._reply is not None and not self._reply.done():
            await self._stop_reply()  # the user speaks again: what we were about to say is stale
            self._mark_interrupted()

    async def on_segment(self, segment: Segment) -> None:
        if self.options.stt == "meetingbaas":
            return  # the bot's own transcripts are the turns (on_event)
        await self._stop_reply()
        self._reply = asyncio.create_task(self._turn(segment))

    async def on_event(self, event: Event) -> None:
        await super().on_event(event)
        if (
            self.options.stt == "meetingbaas"
            and event["type"] == "transcript"
            and event.get("transcribed_by") == "meetingbaas"
            and event.get("final")
            and event.get("text")
        ):
            await self._stop_reply()
            self._reply = asyncio.create_task(
                self._respond(event["text"], event.get("speaker") or "Participant")
            )

    async def on_interrupted(self, report: PlaybackReport) -> None:
        await self._stop_reply()
        self._mark_interrupted()

    async def on_stop(self) -> None:
        await self._stop_reply()
        await self.api.aclose()

    async def _stop_reply(self) -> None:
        if self._reply is not None and not self._reply.done():
            self._reply.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reply
        self._reply = None

    async def _turn(self, segment: Segment) -> None:
        try:
            text = await self._hear(segment.audio)
        except HttpError as exc:
            self._failed(exc)
            return
        if not text:
            return
        speaker = segment.speaker or "Participant"
        self.session.emit(
            "transcript",
            text=text,
            speaker=speaker,
            start_ms=segment.start_ms,
            end_ms=segment.end_ms,
        )
        await self._respond(text, speaker)

    async def _respond(self, text: str, speaker: str) -> None:
        """Answer one turn of `speaker`'s."""
        self.history.append({"role": "user", "content": f"{speaker}: {text}"})
        try:
            await self._answer()
        except HttpError as exc:
            self._failed(exc)

    def _failed(self, exc: HttpError) -> None:
        self.session.log.error("agent: the model API failed: %s", exc)
        self.session.emit("agent_error", error=str(exc))

    async def _hear(self, audio: np.ndarray) -> str:
        if self.options.stt == "api":
            return await self.api.transcribe(audio, STT_RATE, self.options.stt_model)
        return await transcribe(audio)

    async def _answer(self) -> None:
        """Stream the reply, speaking each sentence as soon as it is complete."""
        messages = self.messages()
        self._reply_message = {"role": "assistant", "content": ""}
        self._reply_sentences = []
        self.history.append(self._reply_message)
        pending = ""
        async for delta in self.api.chat(messages, self.options.chat_model):
            sentences, pending = complete_sentences(pending + delta)
            for sentence in sentences:
                self._say(sentence)
        if pending.strip():
            self._say(pending.strip())

    def _say(self, sentence: str) -> None:
        if self.session.info.user_speaking:  # barge-in is on its way to this task
            raise asyncio.CancelledError
        o = self.options
        if o.tts == "api":
            audio = self.api.speech(sentence, o.tts_model, o.tts_voice)
            utterance = self.session.speak(audio, OPENAI_PCM_RATE)
        else:
            audio = espeak(sentence, o.espeak_voice, o.espeak_speed)
            utterance = self.session.speak(audio, ESPEAK_RATE)
        self._reply_sentences.append((utterance, sentence))
        if self._reply_message is not None:
            self._reply_message["content"] = " ".join(s for _, s in self._reply_sentences)
        self.session.emit("bot_text", text=sentence)

    def _mark_interrupted(self) -> None:
        """Keep in the history only what the meeting heard of the reply, and say it was cut."""
        if self._reply_message is None:
            return
        heard = [
            sentence
            for utterance, sentence in self._reply_sentences
            if utterance.report.done() and utterance.report.result().sent > 0
        ]
        self._reply_message["content"] = " ".join(heard) + INTERRUPTED_MARK
        self._reply_message = None
        self.session.emit("reply_interrupted", heard=" ".join(heard))
