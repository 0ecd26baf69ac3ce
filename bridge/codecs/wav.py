"""WAV files in and out: read any PCM WAV as mono s16, stream s16 to disk as it comes."""

from __future__ import annotations

import wave
from pathlib import Path
from typing import BinaryIO

import numpy as np

from bridge.audio.resample import StreamResampler

WAV_RATES = (8000, 96000)  # the rates a WAV may have, as for raw PCM in a control play
WAV_CHANNELS = (1, 2)  # mono or stereo; more is refused


class WavError(ValueError):
    """A WAV that is not one this bridge plays; the message says what is wrong with it."""


def read_wav(
    path: str | Path | BinaryIO, sample_rate: int | None = None, max_s: float | None = None
) -> tuple[np.ndarray, int]:
    """Mono s16 samples of a 16-bit PCM WAV (channels averaged), resampled if sample_rate is
    set. WavError for anything else, a rate outside WAV_RATES or audio longer than max_s;
    the header is checked before any sample is read, so a lying header costs nothing."""
    try:
        with wave.open(path if hasattr(path, "read") else str(path), "rb") as wav:  # type: ignore[arg-type]
            channels, rate, frames = _checked_format(wav, max_s)
            data = np.frombuffer(wav.readframes(frames), dtype="<i2")
    except (wave.Error, EOFError) as exc:
        raise WavError(_unreadable(str(exc))) from None
    if len(data) % channels:
        data = data[: len(data) - len(data) % channels]  # a cut last frame
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1).astype("<i2")
    if sample_rate and sample_rate != rate:
        resampler = StreamResampler(rate, sample_rate, quality="VHQ")
        data = np.concatenate([resampler.process(data), resampler.flush()])
        rate = sample_rate
    return data, rate


def _unreadable(reason: str) -> str:
    if reason.startswith("unknown format"):  # 3: float; 65534: extensible (sox's 24-bit)
        return f"only 16-bit integer PCM WAV is supported ({reason}: float or extensible)"
    return f"not a readable PCM WAV ({reason or 'it ends early'})"


def _checked_format(wav: wave.Wave_read, max_s: float | None) -> tuple[int, int, int]:
    """(channels, rate, frames) of a WAV this bridge plays, else WavError."""
    width, channels, rate = wav.getsampwidth(), wav.getnchannels(), wav.getframerate()
    if width != 2:
        raise WavError(f"only 16-bit PCM WAV is supported, not {8 * width}-bit")
    if channels not in WAV_CHANNELS:
        raise WavError(f"{channels} channels: only mono or stereo WAV is supported")
    if not WAV_RATES[0] <= rate <= WAV_RATES[1]:
        raise WavError(f"sample rate {rate} Hz is outside {WAV_RATES[0]}-{WAV_RATES[1]} Hz")
    frames = wav.getnframes()
    if max_s is not None and frames > max_s * rate:
        raise WavError(f"{frames / rate:.1f} s of audio is longer than the {max_s:g} s allowed")
    return channels, rate, frames


def write_wav(path: str | Path | BinaryIO, samples: np.ndarray, sample_rate: int) -> None:
    """Write mono s16 samples to a WAV file (or an open binary file) in one go."""
    with WavWriter(path, sample_rate) as writer:
        writer.write(samples)


class WavWriter:
    """Appends mono s16 to a WAV; each write patches the header, so a crash leaves a valid file."""

    def __init__(self, path: str | Path | BinaryIO, sample_rate: int) -> None:
        self._owned = not hasattr(path, "write")
        self._file: BinaryIO = (
            open(path, "wb")  # type: ignore[arg-type]  # noqa: SIM115 - closed by close()
            if self._owned
            else path  # type: ignore[assignment]
        )
        self._wav = wave.open(self._file, "wb")  # noqa: SIM115
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(sample_rate)
        self.samples = 0

    def write(self, samples: np.ndarray) -> None:
        self._wav.writeframes(np.ascontiguousarray(samples, dtype="<i2").tobytes())
        self._file.flush()
        self.samples += len(samples)

    def close(self) -> None:
        self._wav.close()
        if self._owned:
            self._file.close()

    def __enter__(self) -> WavWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
