"""PCM sample-format conversions between s16 (the wire) and float32 (DSP, users' code)."""

from __future__ import annotations

import numpy as np

S16_SCALE = 32768.0


def s16_to_f32(samples: np.ndarray) -> np.ndarray:
    """s16 samples to float32 in [-1, 1)."""
    return samples.astype(np.float32) / S16_SCALE


def f32_to_s16(samples: np.ndarray) -> np.ndarray:
    """float samples to s16, clipping to the s16 range instead of wrapping around."""
    scaled = np.clip(np.asarray(samples, dtype=np.float32) * S16_SCALE, -32768, 32767)
    return np.rint(scaled).astype("<i2")


_BYTES = (bytes, bytearray, memoryview)  # a tuple: isinstance on a union type costs more


def to_s16(audio: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """Accept s16le bytes, an s16 array or a float array; returns an s16 array (no copy if s16)."""
    if isinstance(audio, _BYTES):
        if len(audio) % 2:
            raise ValueError(f"s16le audio needs an even byte count, got {len(audio)}")
        return np.frombuffer(audio, dtype="<i2")
    if audio.dtype == np.int16:
        return audio
    if np.issubdtype(audio.dtype, np.floating):
        return f32_to_s16(audio)
    raise TypeError(f"audio arrays must be int16 or float, got {audio.dtype}")
