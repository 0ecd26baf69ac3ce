"""Cut a stream of arbitrary-length chunks into fixed frames, a chunk's worth at a time.

A chunk's whole frames come out as one block (a multiple of the frame size), so the work
downstream is a call a chunk, not a call a frame: a bot's 100 ms chunk is five 20 ms
frames. What is left over (less than a frame) is copied aside and joined to the next chunk:
one numpy call each, where a ring buffer's write and read were Python calls of their own
(a tenth of the server's time at 10 ms chunks, which leave half a frame every other time).
"""

from __future__ import annotations

import numpy as np

FRAME_MS_CHOICES = (10, 20, 30)
_NONE = np.zeros(0, dtype=np.int16)  # no samples (read-only: shared by every framer)
_NONE.flags.writeable = False


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
        self._rest = _NONE  # under a frame, copied: the caller's chunk may be reused

    @property
    def pending(self) -> int:
        """Samples waiting for a frame to fill."""
        return len(self._rest)

    def take(self, chunk: np.ndarray) -> np.ndarray:
        """The whole frames this chunk completes, as one block (maybe empty): a view of chunk
        when nothing was pending, else a new array. Copy a view to keep it."""
        size, rest = self.frame_size, self._rest
        pending = len(rest)
        if not pending and not len(chunk) % size:
            return chunk  # whole frames, nothing waiting: a bot's 20 or 100 ms chunk
        whole = (pending + len(chunk)) // size * size
        if whole == 0:  # still under a frame: a 10 ms chunk of a 20 ms frame, every other
            self._rest = np.concatenate((rest, chunk)) if pending else chunk.copy()
            return _NONE
        used = whole - pending  # of chunk, into the block
        block = np.concatenate((rest, chunk[:used])) if pending else chunk[:whole]
        self._rest = chunk[used:].copy() if used < len(chunk) else _NONE
        return block

    def flush(self) -> np.ndarray | None:
        """The last partial frame, zero-padded, or None when nothing is pending."""
        if not len(self._rest):
            return None
        frame = np.zeros(self.frame_size, dtype=np.int16)
        frame[: len(self._rest)] = self._rest
        self._rest = _NONE
        return frame
