"""The playback queue: utterances waiting to be paced out, bounded, clearable on barge-in."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from bridge.audio.ring import RingBuffer


@dataclass(slots=True)
class QueuedUtterance:
    """Sample accounting of one utterance in the queue."""

    id: int
    queued: int = 0
    sent: int = 0
    complete: bool = False  # the producer will add nothing more


@dataclass(frozen=True, slots=True)
class PlaybackReport:
    """What became of an utterance: samples sent to the bot, samples dropped by barge-in."""

    utterance_id: int
    sent: int
    dropped: int
    interrupted: bool


class PlaybackQueue:
    """Bot-rate samples of consecutive utterances in one ring; reads attribute them in order."""

    def __init__(self, capacity: int) -> None:
        self.ring = RingBuffer(capacity)  # read its `available`; write through the queue
        self._utterances: deque[QueuedUtterance] = deque()
        self._next_id = 1

    @property
    def free(self) -> int:
        return self.ring.free

    @property
    def available(self) -> int:
        return self.ring.available

    @property
    def idle(self) -> bool:
        """No audio queued and no utterance still being produced."""
        return not self._utterances

    @property
    def producing(self) -> bool:
        """The newest utterance may still grow."""
        return bool(self._utterances) and not self._utterances[-1].complete

    def open(self) -> int:
        """Start an utterance; returns its id."""
        utterance = QueuedUtterance(self._next_id)
        self._next_id += 1
        self._utterances.append(utterance)
        return utterance.id

    def write(self, utterance_id: int, samples: np.ndarray) -> int:
        """Queue what fits of samples for the newest utterance; returns how many were taken."""
        last = self._utterances[-1] if self._utterances else None
        if last is None or last.id != utterance_id or last.complete:
            return 0  # the utterance was cleared by barge-in or already closed
        n = self.ring.write(samples[: self.ring.free])
        last.queued += n
        return n

    def pass_through(self, utterance_id: int, samples: int) -> bool:
        """Account samples of the newest, open utterance sent on without being queued (the
        queue was empty); False if it is not that utterance (cleared, or closed)."""
        last = self._utterances[-1] if self._utterances else None
        if last is None or last.id != utterance_id or last.complete:
            return False
        last.queued += samples
        last.sent += samples
        return True

    def close(self, utterance_id: int) -> list[PlaybackReport]:
        """Mark an utterance complete; returns its report if it has already all been sent."""
        for utterance in self._utterances:
            if utterance.id == utterance_id:
                utterance.complete = True
        return self._pop_finished()

    def read(self, out: np.ndarray) -> tuple[int, list[PlaybackReport]]:
        """Fill out with the next samples; returns the count and reports of finished utterances."""
        n = self.ring.read_into(out)
        remaining = n
        for utterance in self._utterances:
            take = min(remaining, utterance.queued - utterance.sent)
            utterance.sent += take
            remaining -= take
            if not remaining:
                break
        return n, self._pop_finished()

    def clear(self) -> list[PlaybackReport]:
        """Barge-in: drop all queued audio; returns a report for every utterance cut short."""
        self.ring.clear()
        reports = [
            PlaybackReport(u.id, u.sent, u.queued - u.sent, interrupted=True)
            for u in self._utterances
        ]
        self._utterances.clear()
        return reports

    def _pop_finished(self) -> list[PlaybackReport]:
        reports = []
        while self._utterances and self._utterances[0].complete:
            head = self._utterances[0]
            if head.sent < head.queued:
                break
            self._utterances.popleft()
            reports.append(PlaybackReport(head.id, head.sent, 0, interrupted=False))
        return reports
