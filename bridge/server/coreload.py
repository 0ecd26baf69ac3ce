"""How much of its core the event loop used lately; past a share, new sessions wait elsewhere.

A bridge past its core does not slow down gently: once the loop runs late, live playouts
leave their direct path for their paced queue, which costs more a frame, so the loop stays
late and every session on it suffers (docs/operations.md, "Sizing a bridge"). So the loop's
own CPU time (its thread's, not a responder's worker threads) is sampled once a second, and
while its share of the last window is at or above a limit the server refuses new sessions
with 503, as when it is full, and `/healthz` says so: a load balancer sends them on, and the
sessions it holds (their reconnects and second sockets included) go on.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily

SAMPLE_EVERY_S = 1.0


class CoreLoad:
    """The loop thread's CPU share over a sliding window of samples; `busy` past the limit.
    Sample it from the loop's thread (`thread_time` is per thread)."""

    def __init__(
        self,
        limit: float,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
        cpu: Callable[[], float] = time.thread_time,
    ) -> None:
        self.limit = limit  # 0: never busy
        self._clock, self._cpu = clock, cpu
        self._samples: deque[tuple[float, float]] = deque(
            maxlen=math.ceil(window_s / SAMPLE_EVERY_S) + 1
        )
        self.share = 0.0  # of one core, over the samples held
        self.busy = False  # the window is full and its share at or above the limit

    def sample(self) -> bool:
        """Take a sample; True if `busy` changed with it."""
        now, cpu = self._clock(), self._cpu()
        self._samples.append((now, cpu))
        first_at, first_cpu = self._samples[0]
        self.share = (cpu - first_cpu) / (now - first_at) if now > first_at else 0.0
        was = self.busy
        self.busy = self.limit > 0 and self._window_full and self.share >= self.limit
        return self.busy is not was

    @property
    def _window_full(self) -> bool:
        return len(self._samples) == self._samples.maxlen

    def metric_families(self) -> Iterator[Any]:
        """The share and whether new sessions are refused for it, for /metrics."""
        yield GaugeMetricFamily(
            "speakbridge_event_loop_cpu_share",
            "The event loop thread's CPU time over the last admission window, per wall second",
            value=self.share,
        )
        yield GaugeMetricFamily(
            "speakbridge_busy",
            "1 while new sessions are refused because the event loop is near its core",
            value=float(self.busy),
        )
