"""Cut a stream of arbitrary-length chunks into fixed frames, through a ring buffer."""

from __future__ import annotations

import numpy as np

from bridge.audio.ring import RingBuffer

FRAME_MS_CHOICES = (10, 20, 30)


def frame_samples(sample_rate: int, frame_ms: int) -> int:
    """Samples in one frame; frame_ms must be one the VAD accepts (10, 20 or 30)."""
    if frame_ms not in FRAME_MS_CHOICES:
        raise ValueError(f"frame_ms must be one of {FRAME_MS_CHOICES}, got {frame_ms}")
    return sample_rate * frame_ms // 1000


class Framer:
    """Cuts fixed frames out of chunks as they arrive; a chunk larger than the buffer is taken
    in parts.

    feed() returns a list, not a generator (a generator's resumes cost more than the frames'
    handling): frames of an aligned chunk are views of it, frames that crossed the ring are
    new arrays, so every frame stays valid as long as it is kept.
    """

    def __init__(self, frame_size: int, capacity: int) -> None:
        if capacity < frame_size:
            raise ValueError("the ring buffer must hold at least one frame")
        self._ring = RingBuffer(capacity)
        self.frame_size = frame_size

    @property
    def pending(self) -> int:
        """Samples waiting for a frame to fill."""
        return self._ring.available

    def feed(self, chunk: np.ndarray) -> list[np.ndarray]:
        """Buffer chunk; returns every whole frame now available."""
        size = self.frame_size
        if not self._ring.available:  # aligned: frames are views of chunk, only the rest is kept
            whole = len(chunk) - len(chunk) % size
            if whole < len(chunk):
                self._ring.write(chunk[whole:])  # less than a frame: it fits, and waits for more
            return [chunk[start : start + size] for start in range(0, whole, size)]
        frames, taken = [], 0
        while True:
            taken += self._ring.write(chunk[taken:])
            while self._ring.available >= size:
                frame = np.empty(size, dtype="<i2")
                self._ring.read_into(frame)
                frames.append(frame)
            if taken == len(chunk):
                return frames

    def flush(self) -> np.ndarray | None:
        """The last partial frame, zero-padded, or None when nothing is pending."""
        frame = np.zeros(self.frame_size, dtype="<i2")
        return frame if self._ring.read_into(frame) else None
