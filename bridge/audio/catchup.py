"""Catch-up for a live stream: a delay that lasts is shed, so a stall adds no lasting latency.

A live loopback can only play at real time, so audio that piles up during a stall (a
burst of late input, a slow tick) would otherwise wait, and be late, for good. As a
jitter buffer does, this watches the low point of the wait over a window: jitter lets it
fall back to nothing, a lasting backlog does not, and that much (in whole frames,
rounded) is dropped. Clock drift between the bot and us is shed the same way. All counts
are in samples.
"""

from __future__ import annotations

import sys


class CatchUp:
    """Says, frame by frame, whether to keep a live frame or drop it to shorten the backlog."""

    def __init__(self, window: int, limit: int) -> None:
        """window: how long a wait may last (0: forever); limit: the longest wait ever allowed."""
        self.window = window
        self.limit = limit
        self._lowest = sys.maxsize  # least backlog seen in the current window
        self._seen = 0  # samples offered in the current window
        self._shed = 0  # samples still to drop
        self.dropped = 0

    def keep(self, wait: int, frame: int) -> bool:
        """True to queue a frame of `frame` samples that would wait `wait`; False: drop it."""
        if wait + frame > self.limit or self._shed > 0:
            self._shed = max(0, self._shed - frame)
            self.dropped += frame
            return False
        if self.window:
            self._watch(wait, frame)
        return True

    def _watch(self, wait: int, frame: int) -> None:
        self._lowest = min(self._lowest, wait)
        self._seen += frame
        if self._seen >= self.window:
            self._shed = (self._lowest + frame // 2) // frame * frame
            self._lowest, self._seen = sys.maxsize, 0
