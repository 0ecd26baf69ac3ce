"""Offline text-to-speech with espeak-ng, streamed: audio is yielded as espeak writes it."""

from __future__ import annotations

import asyncio
import shutil
import struct
from collections.abc import AsyncGenerator, AsyncIterator

import numpy as np

ESPEAK = "espeak-ng"
ESPEAK_RATE = 22050
WAV_HEADER_BYTES = 44
READ_BYTES = 4410  # 100 ms at 22050 Hz


def check_espeak() -> None:
    """Raise ValueError with the fix when espeak-ng is not installed."""
    if shutil.which(ESPEAK) is None:
        raise ValueError("espeak-ng is not installed (Debian: apt-get install espeak-ng)")


async def espeak(
    text: str, voice: str = "en-us", speed: int = 160, pitch: int = 50
) -> AsyncIterator[np.ndarray]:
    """s16 chunks at ESPEAK_RATE as espeak-ng synthesizes text (the text goes in on stdin)."""
    process = await asyncio.create_subprocess_exec(
        ESPEAK,
        "--stdout",
        "-v",
        voice,
        "-s",
        str(speed),
        "-p",
        str(pitch),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdin and process.stdout and process.stderr
    process.stdin.write(text.encode())
    process.stdin.close()
    try:
        header = await process.stdout.readexactly(WAV_HEADER_BYTES)
        rate = struct.unpack("<I", header[24:28])[0]
        if header[:4] != b"RIFF" or rate != ESPEAK_RATE:
            raise RuntimeError(f"espeak-ng wrote an unexpected WAV header (rate {rate})")
        carry = b""
        while chunk := await process.stdout.read(READ_BYTES):
            data = carry + chunk
            whole = len(data) - len(data) % 2
            carry = data[whole:]
            yield np.frombuffer(data[:whole], dtype="<i2")
    except asyncio.IncompleteReadError:
        error = (await process.stderr.read()).decode(errors="replace").strip()
        raise RuntimeError(f"espeak-ng failed: {error or 'no audio'}") from None
    finally:
        if process.returncode is None:
            process.kill()
        # wait() alone never returns while a pipe is unread (a speech stopped part-way):
        # what the killed process left in them is read, at most the pipes' buffers
        await process.communicate()


class Started:
    """espeak-ng's speech once its first chunk is out: a voice it cannot load is a
    RuntimeError from start(), before anyone is told "ok". aclose() ends the process,
    played or not."""

    def __init__(self, first: np.ndarray, rest: AsyncGenerator[np.ndarray, None]) -> None:
        self._first: np.ndarray | None = first
        self._rest = rest

    @classmethod
    async def start(cls, text: str, voice: str, speed: int) -> Started:
        speech = espeak(text, voice, speed)
        try:
            return cls(await anext(speech), speech)
        except (RuntimeError, StopAsyncIteration) as exc:
            await speech.aclose()
            raise RuntimeError(str(exc) or "espeak-ng made no audio") from None

    def __aiter__(self) -> Started:
        return self

    async def __anext__(self) -> np.ndarray:
        if self._first is not None:
            chunk, self._first = self._first, None
            return chunk
        return await anext(self._rest)

    async def aclose(self) -> None:
        await self._rest.aclose()
