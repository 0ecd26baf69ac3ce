"""Cut a stream of arbitrary-length chunks into fixed frames, a chunk's worth at a time.

A chunk's whole frames come out as one block (a multiple of the frame size), so the work
downstream is a call a chunk, not a call a frame: a bot's 100 ms chunk is five 20 ms
frames. What is left over (less than a frame) waits in a ring buffer for the next chunk.
"""

from __future__ import annotations

import numpy as np

from bridge.audio.ring import RingBuffer

FRAME_MS_CHOICES = (10, 20, 30)


def frame_samples(sample_rate: int, frame_ms: int) -> int:
    """Samples in one frame; frame_ms must be one the VAD accepts (10, 20 or 30)."""
    if frame_ms not in FRAME_MS_CHOICES:
        raise ValueError(f"frame_ms must be one of {FRAME_MS_CHOICES}, got {frame_ms}")
    return sample_rate * frame_ms // 1000


def frames_of(block: np.ndarray, size: int) -> list[np.ndarray]:
    """The frames of a block, as views of it."""
    return [block[start : start + size] for start in range(0, len(block), size)]


class Framer:
    """Hands out each chunk's whole frames as one block; keeps the rest (under a frame)."""

    def __init__(self, frame_size: int) -> None:
        self.frame_size = frame_size
        self._ring = RingBuffer(frame_size)  # never holds a whole frame: it would be out

    @property
    def pending(self) -> int:
        """Samples waiting for a frame to fill."""
        return self._ring.available

    def take(self, chunk: np.ndarray) -> np.ndarray:
        """The whole frames this chunk completes, as one block (maybe empty): a view of chunk
        when nothing was pending, else a new array. Copy a view to keep it."""
        size, pending = self.frame_size, self._ring.available
        if not pending and not len(chunk) % size:
            return chunk  # whole frames, nothing waiting: a bot's 20 or 100 ms chunk
        whole = (pending + len(chunk)) // size * size
        if not pending:
            block = chunk[:whole]
        elif not whole:
            block = chunk[:0]
        else:
            block = np.empty(whole, dtype=np.int16)
            self._ring.read_into(block[:pending])
            block[pending:] = chunk[: whole - pending]
        self._ring.write(chunk[max(0, whole - pending) :])
        return block

    def flush(self) -> np.ndarray | None:
        """The last partial frame, zero-padded, or None when nothing is pending."""
        frame = np.zeros(self.frame_size, dtype=np.int16)
        return frame if self._ring.read_into(frame) else None
