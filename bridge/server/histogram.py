"""A fixed-bucket histogram: constant memory, cheap to observe, mergeable, with quantiles."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

LATENCY_BUCKETS_S = (
    0.0001,
    0.0002,
    0.0003,
    0.0005,
    0.00075,
    0.001,
    0.0015,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.02,
    0.05,
    0.1,
    0.25,
)
LOOP_LAG_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Histogram:
    """Counts of observations at or under each bound, plus one bucket above the last."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def merge(self, other: Histogram) -> None:
        """Add other's observations (same bounds)."""
        assert other.bounds == self.bounds, "histograms with different buckets"
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.sum += other.sum
        self.count += other.count

    def cumulative(self) -> list[tuple[str, int]]:
        """(upper bound, observations at or under it) pairs, "+Inf" last, as Prometheus wants."""
        out, running = [], 0
        for bound, n in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out

    def quantile(self, q: float) -> float | None:
        """Estimate of the q-quantile, interpolated within its bucket (None when empty)."""
        if not self.count:
            return None
        rank, running = q * self.count, 0
        for i, n in enumerate(self.counts):
            if running + n >= rank and n:
                low = self.bounds[i - 1] if i else 0.0
                high = self.bounds[i] if i < len(self.bounds) else self.bounds[-1]
                return low + (high - low) * (rank - running) / n
            running += n
        return self.bounds[-1]
