"""Streaming resampling with soxr: filter history is kept across chunks, so no clicks at joins."""

from __future__ import annotations

from typing import Literal

import numpy as np
import soxr

Quality = Literal["QQ", "LQ", "MQ", "HQ", "VHQ"]


class StreamResampler:
    """Resamples one continuous s16 stream chunk by chunk; a pass-through when rates match."""

    def __init__(self, in_rate: int, out_rate: int, quality: Quality = "HQ") -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream = (
            None
            if in_rate == out_rate
            else soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality=quality)
        )

    @property
    def passthrough(self) -> bool:
        return self._stream is None

    @property
    def delay_ms(self) -> float:
        """Algorithmic delay the filter adds, in ms of output (0 until the first chunk fills it)."""
        return 0.0 if self._stream is None else self._stream.delay() * 1000 / self.out_rate

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Resample the next chunk; output length varies while the filter fills."""
        if self._stream is None:
            return chunk
        return self._stream.resample_chunk(np.ascontiguousarray(chunk, dtype=np.int16))

    def flush(self) -> np.ndarray:
        """End the stream: returns the samples still held in the filter."""
        if self._stream is None:
            return np.zeros(0, dtype=np.int16)
        tail = self._stream.resample_chunk(np.zeros(0, dtype=np.int16), last=True)
        self._stream.clear()
        return tail
