"""The control channel: JSON commands in (say, play, interrupt, leave), session events out.

`ws://H:P/control/{session_id}` takes commands and streams the session's events; a bad
command gets an error naming the field, and the channel stays open.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import io
import json
import logging
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from bridge.codecs.wav import read_wav
from bridge.server.session import Session
from bridge.speech.tts import ESPEAK_RATE, espeak

log = logging.getLogger(__name__)
LEAVE_REASON = "leave command"


class Say(BaseModel):
    """Speak text (through a responder that handles `say`, else espeak-ng's defaults)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["say"]
    text: str = Field(min_length=1, max_length=10_000)
    voice: str | None = None
    speed: int | None = Field(None, ge=80, le=450)


class Play(BaseModel):
    """Play a WAV from the media directory (`path`), sent inline (`audio`, base64), or, with
    neither, the file of the session's player responder."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["play"]
    path: str | None = None
    audio: str | None = Field(None, description="base64 of a WAV file, or of raw s16le PCM")
    sample_rate: int | None = Field(None, ge=8000, le=96000, description="rate of raw PCM")

    @model_validator(mode="after")
    def _one_source(self) -> Play:
        if self.path is not None and self.audio is not None:
            raise ValueError("give path or audio, not both")
        if self.audio is not None:
            try:
                raw = base64.b64decode(self.audio, validate=True)
            except binascii.Error:
                raise ValueError("audio is not valid base64") from None
            if not raw.startswith(b"RIFF") and self.sample_rate is None:
                raise ValueError("raw PCM audio needs sample_rate")
        return self


class Interrupt(BaseModel):
    """Stop the bot speaking now."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["interrupt"]


class Leave(BaseModel):
    """End the session: the bot's sockets are closed (and, under `launch --serve`, it leaves)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["leave"]


Command = Annotated[Say | Play | Interrupt | Leave, Field(discriminator="type")]
COMMAND = TypeAdapter(Command)


class CommandError(ValueError):
    """A command that cannot be carried out; the message names the field."""


def parse_command(text: str) -> Say | Play | Interrupt | Leave:
    """Validate one JSON command; CommandError names the first bad field."""
    try:
        return COMMAND.validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "command"
        raise CommandError(f"{where}: {first['msg']}") from None


def load_play_audio(command: Play, media_dir: Path | None) -> tuple[np.ndarray, int]:
    """The samples a play command names; paths must lie inside media_dir."""
    if command.audio is not None:
        raw = base64.b64decode(command.audio)
        if raw.startswith(b"RIFF"):
            return read_wav(io.BytesIO(raw))
        if len(raw) % 2:
            raise CommandError("audio: raw s16le PCM needs an even byte count")
        return np.frombuffer(raw, dtype="<i2"), command.sample_rate or 0
    if media_dir is None:
        raise CommandError("path: playing files is off; start the server with --media-dir")
    base = media_dir.resolve()
    target = (base / (command.path or "")).resolve()
    if not target.is_relative_to(base) or not target.is_file():
        raise CommandError(f"path: no such file in the media directory: {command.path!r}")
    try:
        return read_wav(target)
    except (ValueError, EOFError, OSError) as exc:
        raise CommandError(f"path: not a readable 16-bit WAV ({exc})") from None


async def carry_out(
    session: Session, command: Say | Play | Interrupt | Leave, media_dir: Path | None
) -> dict[str, Any]:
    """Do what a command asks; returns the reply for the client."""
    if isinstance(command, Interrupt):
        session.interrupt("interrupt command")
    elif isinstance(command, Leave):
        session.leave(LEAVE_REASON)
    elif isinstance(command, Say):
        if not session.delegate("say", command.model_dump()):  # no tts responder: defaults
            voice, speed = command.voice or "en-us", command.speed or 160
            session.playout.speak(espeak(command.text, voice, speed), ESPEAK_RATE)
            session.events.publish("bot_text", text=command.text)
    elif command.path is None and command.audio is None:
        if not session.delegate("play", command.model_dump()):
            raise CommandError("path: give path or audio (this session has no player responder)")
    else:
        samples, rate = load_play_audio(command, media_dir)
        session.playout.speak(samples, rate)
    return {"type": "ok", "command": command.type}


async def serve_control(
    connection: ServerConnection, session: Session, media_dir: Path | None
) -> None:
    """Run one control client: its commands in, the session's events out, until it leaves."""
    events = session.events.subscribe()
    sender = asyncio.create_task(_forward(connection, events))
    try:
        async for message in connection:
            await connection.send(json.dumps(await _reply(session, message, media_dir)))
    except ConnectionClosed:
        pass
    finally:
        session.events.unsubscribe(events)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender


async def _reply(session: Session, message: str | bytes, media_dir: Path | None) -> dict[str, Any]:
    if isinstance(message, bytes):
        return {"type": "error", "error": "commands are JSON text frames"}
    try:
        return await carry_out(session, parse_command(message), media_dir)
    except CommandError as exc:
        log.info("session %s: control command refused: %s", session.id, exc)
        return {"type": "error", "error": str(exc)}


async def _forward(connection: ServerConnection, events: asyncio.Queue[dict[str, Any]]) -> None:
    with contextlib.suppress(ConnectionClosed):
        while True:
            await connection.send(json.dumps(await events.get()))
