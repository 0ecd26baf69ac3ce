"""A preallocated ring buffer of samples: the bounded store between a producer and a framer.

Its storage is an anonymous memory map: a page becomes resident when audio is first written
to it, and the pages past the front are handed back to the OS when the ring empties, so a
large bound (seconds of queued speech) costs memory only while it is in use.
"""

from __future__ import annotations

import mmap

import numpy as np

KEPT_BYTES = 4 * mmap.PAGESIZE  # front of an emptied ring kept resident: it is written next


class RingBuffer:
    """Fixed-capacity FIFO of samples; writes past capacity are refused and counted."""

    def __init__(self, capacity: int, dtype: str = "<i2") -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self._map = mmap.mmap(-1, capacity * np.dtype(dtype).itemsize)
        self._data = np.frombuffer(self._map, dtype=dtype)
        self.capacity = capacity
        self.available = 0  # samples ready to read (a plain attribute: read it, never set it)
        self._read = 0  # index of the oldest sample
        self._touched = 0  # samples from the front written since the pages were last released
        self.overflowed = 0  # samples refused because the buffer was full

    @property
    def free(self) -> int:
        return self.capacity - self.available

    def write(self, samples: np.ndarray) -> int:
        """Append as many samples as fit; returns how many, counting the rest as overflow."""
        capacity = self.capacity
        n = min(len(samples), capacity - self.available)
        self.overflowed += len(samples) - n
        start = (self._read + self.available) % capacity
        first = min(n, capacity - start)
        self._data[start : start + first] = samples[:first]
        if n > first:
            self._data[: n - first] = samples[first:n]
        self.available += n
        if start + first > self._touched:
            self._touched = start + first
        return n

    def read_into(self, out: np.ndarray) -> int:
        """Move up to len(out) of the oldest samples into out; returns how many."""
        n = min(len(out), self.available)
        first = min(n, self.capacity - self._read)
        out[:first] = self._data[self._read : self._read + first]
        if n > first:
            out[first:n] = self._data[: n - first]
        self.available -= n
        if self.available:
            self._read = (self._read + n) % self.capacity
        else:
            self._restart()
        return n

    def clear(self) -> int:
        """Drop everything buffered; returns how many samples were dropped."""
        dropped, self.available = self.available, 0
        self._restart()
        return dropped

    def _restart(self) -> None:
        """Emptied: start again at the front, so a stream that never backs up keeps to the
        first pages, and give back the pages a backlog made resident."""
        self._read = 0
        if self._touched * self._data.itemsize > KEPT_BYTES:
            self._map.madvise(mmap.MADV_DONTNEED, KEPT_BYTES, len(self._map) - KEPT_BYTES)
        self._touched = 0
