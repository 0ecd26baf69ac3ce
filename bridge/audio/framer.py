"""Cut a stream of arbitrary-length chunks into fixed frames, through a ring buffer."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from bridge.audio.ring import RingBuffer

FRAME_MS_CHOICES = (10, 20, 30)


def frame_samples(sample_rate: int, frame_ms: int) -> int:
    """Samples in one frame; frame_ms must be one the VAD accepts (10, 20 or 30)."""
    if frame_ms not in FRAME_MS_CHOICES:
        raise ValueError(f"frame_ms must be one of {FRAME_MS_CHOICES}, got {frame_ms}")
    return sample_rate * frame_ms // 1000


class Framer:
    """Yields fixed frames as chunks arrive; a chunk larger than the buffer is taken in parts.

    Each yielded frame is a view of the chunk or of one reused array: copy it to keep it.
    """

    def __init__(self, frame_size: int, capacity: int) -> None:
        if capacity < frame_size:
            raise ValueError("the ring buffer must hold at least one frame")
        self._ring = RingBuffer(capacity)
        self._frame = np.zeros(frame_size, dtype="<i2")

    @property
    def frame_size(self) -> int:
        return len(self._frame)

    @property
    def pending(self) -> int:
        """Samples waiting for a frame to fill."""
        return self._ring.available

    def feed(self, chunk: np.ndarray) -> Iterator[np.ndarray]:
        """Buffer chunk and yield every whole frame now available."""
        size = len(self._frame)
        if not self._ring.available:  # aligned: frames are views of chunk, only the rest is kept
            whole = len(chunk) - len(chunk) % size
            if whole < len(chunk):
                self._ring.write(chunk[whole:])  # less than a frame: it fits, and waits for more
            for start in range(0, whole, size):
                yield chunk[start : start + size]
            return
        taken = 0
        while True:
            taken += self._ring.write(chunk[taken:])
            while self._ring.available >= size:
                self._ring.read_into(self._frame)
                yield self._frame
            if taken == len(chunk):
                return

    def flush(self) -> np.ndarray | None:
        """The last partial frame, zero-padded, or None when nothing is pending."""
        n = self._ring.read_into(self._frame)
        if n == 0:
            return None
        self._frame[n:] = 0
        return self._frame
