"""Integer-factor downsampling for the VAD: the mean of each group of `factor` samples.

webrtcvad judges 8 kHz audio (at 16 kHz it halves the rate itself first), and the bot's
rates (16, 24, 32 and 48 kHz: factors 2, 3, 4, 6) are whole multiples of 8 kHz, so the VAD's
input needs no resampler: a boxcar mean is its own anti-alias filter (nulls at multiples of
8 kHz; from 24 kHz, 6 kHz is cut by 9.5 dB), delays by (factor - 1) / 2 input samples (at
most 0.05 ms) and keeps at most factor - 1 samples across chunks. Sums are exact integers,
so any chunking gives the same stream bit for bit.
"""

from __future__ import annotations

import numpy as np

from bridge.audio._vadcore import mean_groups  # integer sums in C: a tenth of numpy's


class Decimator:
    """Downsamples one continuous s16 stream by a whole factor, chunk by chunk."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        if in_rate % out_rate:
            raise ValueError(f"{in_rate} Hz is not a whole multiple of {out_rate} Hz")
        self.factor = in_rate // out_rate
        self.out_rate = out_rate
        self._carry = np.zeros(0, dtype=np.int16)  # the start of a group split across chunks

    @property
    def delay_ms(self) -> float:
        """Group delay of the boxcar: (factor - 1) / 2 input samples."""
        return (self.factor - 1) / 2 * 1000 / (self.out_rate * self.factor)

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """The means (truncated to s16) of every whole group this chunk completes."""
        factor = self.factor
        if factor == 1:
            return chunk
        if len(self._carry):
            chunk = np.concatenate((self._carry, chunk))
        if rest := len(chunk) % factor:  # a bot's 20 ms chunk has none at 16 or 24 kHz
            self._carry, chunk = chunk[-rest:].copy(), chunk[:-rest]
        elif len(self._carry):
            self._carry = chunk[:0]
        return np.frombuffer(mean_groups(chunk, factor), dtype=np.int16)
