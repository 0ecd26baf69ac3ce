"""WAV files in and out: read any PCM WAV as mono s16, stream s16 to disk as it comes."""

from __future__ import annotations

import wave
from pathlib import Path
from typing import BinaryIO

import numpy as np

from bridge.audio.resample import StreamResampler


def read_wav(path: str | Path | BinaryIO, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Mono s16 samples of a 16-bit PCM WAV (channels averaged), resampled if sample_rate is set."""
    with wave.open(path if hasattr(path, "read") else str(path), "rb") as wav:  # type: ignore[arg-type]
        if wav.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM WAV is supported")
        channels, rate = wav.getnchannels(), wav.getframerate()
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1).astype("<i2")
    if sample_rate and sample_rate != rate:
        resampler = StreamResampler(rate, sample_rate, quality="VHQ")
        data = np.concatenate([resampler.process(data), resampler.flush()])
        rate = sample_rate
    return data, rate


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
