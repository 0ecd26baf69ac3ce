"""Collect the frames of one speech segment between the VAD's start and stop events.

The VAD reports speech late (by its start and stop windows) but back-dates its events,
so frames are kept from a pre-roll before the start and trimmed after the stop.
"""

from __future__ import annotations

from collections import deque

import numpy as np

MAX_EVENT_LAG_MS = 1000  # the longest a start event may lag its audio (the VAD's start window)


class SegmentCollector:
    """Frames in, one array per speech segment out; bounded by max_ms (longer is cut, counted)."""

    def __init__(self, frame_ms: float, preroll_ms: float, tail_ms: float, max_ms: float) -> None:
        self.frame_ms = frame_ms
        self.preroll_ms = preroll_ms
        self.tail_ms = tail_ms
        self.max_frames = int(max_ms // frame_ms)
        self._position_ms = 0.0
        self._recent: deque[tuple[float, np.ndarray]] = deque()
        self._segment: list[tuple[float, np.ndarray]] | None = None
        self.frames_cut = 0  # frames beyond max_ms, not kept

    def add(self, frame: np.ndarray) -> None:
        """One frame of the stream (kept as given: pass a copy you own)."""
        entry = (self._position_ms, frame)
        self._position_ms += self.frame_ms
        if self._segment is None:
            self._recent.append(entry)
            keep_ms = self.preroll_ms + MAX_EVENT_LAG_MS
            while self._recent and self._recent[0][0] < self._position_ms - keep_ms:
                self._recent.popleft()
        elif len(self._segment) < self.max_frames:
            self._segment.append(entry)
        else:
            self.frames_cut += 1

    def start(self, at_ms: float) -> None:
        """Speech began at at_ms: the segment opens with the pre-roll before it."""
        keep_from = at_ms - self.preroll_ms
        self._segment = [e for e in self._recent if e[0] >= keep_from]
        self._recent.clear()

    def stop(self, at_ms: float) -> np.ndarray | None:
        """Speech ended at at_ms: the segment's audio up to the tail after it (None if empty)."""
        if self._segment is None:
            return None
        end = at_ms + self.tail_ms
        frames = [frame for at, frame in self._segment if at < end]
        self._segment = None
        return np.concatenate(frames) if frames else None
