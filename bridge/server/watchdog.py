"""Event-loop watchdog: measures loop lag, and names whatever blocks the loop for too long.

A coroutine on the loop stamps a heartbeat every tick; a thread checks it. When the loop
has not ticked for `threshold_s`, the thread reads the loop thread's stack, finds the
responder (or other code) that holds it and logs it once per blocking episode, with its
session; when the loop runs again, it logs the episode's whole length. Code that blocks
the loop stalls every session: move it to a thread.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import types
from collections.abc import Callable

log = logging.getLogger(__name__)


class LoopWatchdog:
    """Start with start() inside the running loop; stop() when done."""

    def __init__(
        self,
        threshold_s: float,
        tick_s: float = 0.01,
        on_lag: Callable[[float], None] | None = None,
        on_block: Callable[[], None] | None = None,
    ) -> None:
        self.threshold_s = threshold_s
        # a tick is late by a stall less the time left until it was due: a stall much longer
        # than the tick is measured whole, a shorter one only when it happens to cover the tick
        self.tick_s = tick_s
        self._poll_s = threshold_s / 5  # the thread names a block within 1.2 thresholds
        self.on_lag = on_lag
        self.on_block = on_block
        self.blocked: list[str] = []  # what each blocking episode was blamed on
        self.stalls_s: list[float] = []  # each episode's whole length, once it is over
        self._beat = time.monotonic()
        self._stop = threading.Event()
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._loop_thread = threading.get_ident()

    def start(self) -> None:
        self._loop_thread = threading.get_ident()
        self._beat = time.monotonic()
        self._task = asyncio.create_task(self._tick(), name="watchdog")
        self._thread = threading.Thread(target=self._watch, name="watchdog", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    async def _tick(self) -> None:
        while True:
            before = time.monotonic()
            self._beat = before
            await asyncio.sleep(self.tick_s)
            lag = max(0.0, time.monotonic() - before - self.tick_s)
            if self.on_lag is not None:
                self.on_lag(lag)

    def _watch(self) -> None:
        reported_beat, culprit = None, ""
        while not self._stop.wait(self._poll_s):
            beat = self._beat
            if reported_beat is not None and beat != reported_beat:
                self._report_end(beat - reported_beat, culprit)
                reported_beat = None
            stalled = time.monotonic() - beat
            if stalled > self.threshold_s and reported_beat is None:
                reported_beat = beat
                culprit = blame(sys._current_frames().get(self._loop_thread))
                self.blocked.append(culprit)
                if self.on_block is not None:
                    self.on_block()
                log.warning(
                    "the event loop has been blocked for %.0f ms by %s; every session "
                    "stalls meanwhile: move blocking work to a thread",
                    stalled * 1000,
                    culprit,
                )

    def _report_end(self, stall_s: float, culprit: str) -> None:
        """The loop ticked again: the episode lasted from its last beat to this one."""
        self.stalls_s.append(stall_s)
        log.warning("the event loop ran again after %.0f ms blocked by %s", stall_s * 1000, culprit)


def blame(frame: types.FrameType | None) -> str:
    """Name the innermost responder on a stack (with its session), else the innermost code."""
    from bridge.responder import Responder

    innermost = None
    while frame is not None:
        if innermost is None:
            innermost = f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"
        owner = frame.f_locals.get("self")
        if isinstance(owner, Responder):
            return (
                f"responder {type(owner).__name__}.{frame.f_code.co_name} of session "
                f"{owner.session.session_id}"
            )
        frame = frame.f_back
    return innermost or "unknown code"
