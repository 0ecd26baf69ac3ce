"""What live sessions hold is kept out of the garbage collector's full collections.

CPython's cyclic collector now and then walks every tracked object at once: about 200 a
session, so at 800-850 sessions a full collection held the event loop for 110-150 ms,
longer than a bot's lead, and every bot heard a gap at the same moment. What a session
builds when it starts lives as long as the session, so a second after sessions start
everything tracked is frozen (`gc.freeze()`: moved where no collection looks); collections
then walk only what was made since.

Frozen objects are still freed when their last reference goes; frozen cycles are not.
A session cuts its own cycles as it ends (Session._release), so the built-in responders
leave none. Ended sessions are watched, with their responders (a responder's cycle holds
its playout, not its session); once `reclaim_after` of them are still alive a settle
later, everything is unfrozen and collected in one pass (a pause as long as the old full
collections), then frozen again. A user's responder that keeps a cycle thus costs one
pass every `reclaim_after` sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
import weakref
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily

log = logging.getLogger(__name__)

SETTLE_S = 1.0  # sessions that start (or end) within this are frozen (or counted) together


class SessionHeap:
    """Freezes what started sessions hold; reclaims ended ones that cycles keep alive."""

    def __init__(self, reclaim_after: int) -> None:
        self.reclaim_after = reclaim_after
        # each ended session's watched objects: those ended within a settle (max_sessions at
        # most), then those still alive (fewer than reclaim_after)
        self._ended: list[list[weakref.ref[Any]]] = []
        self._settle: asyncio.TimerHandle | None = None
        self.freezes = 0
        self.reclaims = 0
        self.reclaimed = 0  # ended sessions the reclaims freed
        self.reclaim_s = 0.0  # time the reclaims held the loop

    def freeze(self) -> None:
        """Freeze everything tracked now (at start: modules, config; later: sessions)."""
        gc.freeze()
        self.freezes += 1

    def started(self, session: object) -> None:
        """A session was made: what it holds is frozen within SETTLE_S."""
        self._soon()

    def ended(self, session: object, responders: list[object]) -> None:
        """A session ended: if it or a responder of it is still alive after SETTLE_S, a
        cycle may hold it."""
        self._ended.append(_refs((session, *responders)))
        self._soon()

    @property
    def kept(self) -> int:
        """Ended sessions still alive (held by cycles, or by a reference someone kept)."""
        return sum(_alive(refs) for refs in self._ended)

    def _soon(self) -> None:
        if self._settle is None:
            self._settle = asyncio.get_running_loop().call_later(SETTLE_S, self._settled)

    def _settled(self) -> None:
        self._settle = None
        self._ended = [refs for refs in self._ended if _alive(refs)]
        if len(self._ended) >= self.reclaim_after:
            self.reclaim()
        self.freeze()

    def reclaim(self) -> None:
        """Unfreeze and collect everything, once: the ended sessions cycles held are freed.
        Those still alive after it are referenced for real and no longer watched."""
        held = len(self._ended)
        began = time.perf_counter()
        gc.unfreeze()
        gc.collect()
        took = time.perf_counter() - began
        freed = held - self.kept
        self._ended.clear()
        self.reclaims += 1
        self.reclaimed += freed
        self.reclaim_s += took
        level = logging.INFO if self.reclaims == 1 else logging.DEBUG  # then counted
        log.log(
            level,
            "%d ended sessions were still alive: a full collection freed %d in %.0f ms (a "
            "responder keeps reference cycles; later ones are counted in "
            "speakbridge_gc_reclaims_total)",
            held,
            freed,
            took * 1000,
        )

    def close(self) -> None:
        """Stop watching and unfreeze: what was frozen may be garbage by now."""
        if self._settle is not None:
            self._settle.cancel()
            self._settle = None
        self._ended.clear()
        gc.unfreeze()

    def metric_families(self) -> Iterator[Any]:
        """The freezes, the reclaims and what they cost, for /metrics. (Not how many objects
        are frozen: gc.get_freeze_count() walks them all, 50 ms at 800 sessions.)"""
        yield CounterMetricFamily(
            "speakbridge_gc_freezes",
            "Times what sessions hold was kept out of full collections (gc.freeze)",
            value=self.freezes,
        )
        yield CounterMetricFamily(
            "speakbridge_gc_reclaims",
            f"Full collections run because {self.reclaim_after} ended sessions stayed alive",
            value=self.reclaims,
        )
        yield CounterMetricFamily(
            "speakbridge_gc_reclaim_seconds",
            "Time the reclaims held the event loop",
            value=self.reclaim_s,
        )


def _refs(objects: tuple[object, ...]) -> list[weakref.ref[Any]]:
    refs = []
    for o in objects:
        with contextlib.suppress(TypeError):  # a type with no weak references: not watched
            refs.append(weakref.ref(o))
    return refs


def _alive(refs: list[weakref.ref[Any]]) -> bool:
    return any(ref() is not None for ref in refs)
