"""A preallocated ring buffer of samples: the bounded store between a producer and a framer."""

from __future__ import annotations

import numpy as np


class RingBuffer:
    """Fixed-capacity FIFO of samples; writes past capacity are refused and counted."""

    def __init__(self, capacity: int, dtype: str = "<i2") -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self._data = np.zeros(capacity, dtype=dtype)
        self._read = 0  # index of the oldest sample
        self._size = 0
        self.overflowed = 0  # samples refused because the buffer was full

    @property
    def capacity(self) -> int:
        return len(self._data)

    @property
    def available(self) -> int:
        """Samples ready to read."""
        return self._size

    @property
    def free(self) -> int:
        return len(self._data) - self._size

    def write(self, samples: np.ndarray) -> int:
        """Append as many samples as fit; returns how many, counting the rest as overflow."""
        n = min(len(samples), self.free)
        self.overflowed += len(samples) - n
        start = (self._read + self._size) % self.capacity
        first = min(n, self.capacity - start)
        self._data[start : start + first] = samples[:first]
        if n > first:
            self._data[: n - first] = samples[first:n]
        self._size += n
        return n

    def read_into(self, out: np.ndarray) -> int:
        """Move up to len(out) of the oldest samples into out; returns how many."""
        n = min(len(out), self._size)
        first = min(n, self.capacity - self._read)
        out[:first] = self._data[self._read : self._read + first]
        if n > first:
            out[first:n] = self._data[: n - first]
        self._size -= n
        # emptied: start again at the front, so a stream that never backs up keeps to the
        # first pages of the buffer (the rest is never touched, so never resident)
        self._read = (self._read + n) % self.capacity if self._size else 0
        return n

    def clear(self) -> int:
        """Drop everything buffered; returns how many samples were dropped."""
        dropped, self._size, self._read = self._size, 0, 0
        return dropped
