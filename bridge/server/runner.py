"""Runs one responder, fed through a bounded queue, isolated from the session.

Async hooks run one at a time in the responder's own task. A hook written as a plain
function runs inline, as its input arrives, when nothing is queued before it: no task
switch per frame (a live echo's on_audio). Order is kept either way. A hook the responder
does not handle is never queued: a session's speech and turn events would otherwise each
cost every responder a queue entry and a task switch to run a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from bridge.responder import Responder
from bridge.server._dispatch import Dispatch

log = logging.getLogger(__name__)

_STOP: tuple[str, tuple[Any, ...]] = ("stop", ())


class ResponderRunner(Dispatch):
    """Delivers hooks in order; a full queue drops the item (counted), a raising hook is logged.

    A Dispatch (bridge/server/_dispatch.c): `offer(hook, *args)` delivers a hook call
    without waiting, inline if it is a plain function and nothing is queued before it,
    else queued (`_enqueue`); it returns False (and counts it) when the queue is full. A
    hook the responder does not handle (Responder.hooks) is not delivered at all.
    """

    def __init__(self, responder: Responder, queue_size: int, session_id: str) -> None:
        self.responder = responder
        self._queue: asyncio.Queue[tuple[str, tuple[Any, ...]]] = asyncio.Queue(maxsize=queue_size)
        self._session_id = session_id
        self._inline: dict[str, Callable[..., object]] = {  # bound once: no lookup per frame
            hook: getattr(responder, f"on_{hook}") for hook in inline_hooks(responder)
        }
        self._hooks = responder.hooks | {"start", "stop"}  # the others are not delivered
        self._busy = True  # the task is in a hook (on_start first): inline calls would overtake it
        self._waiting = 0  # items queued and not yet taken: the queue's size without a call
        self.dropped: Counter[str] = Counter()
        self.errors = 0
        self.started = asyncio.Event()  # on_start has returned (or raised)
        self._task = asyncio.create_task(self._run(), name=f"responder-{session_id}")

    def _enqueue(self, hook: str, args: tuple[Any, ...]) -> bool:
        """Queue a hook call (offer could not run it inline); False when the queue is full."""
        try:
            self._queue.put_nowait((hook, args))
            self._waiting += 1
        except asyncio.QueueFull:
            if not self.dropped:
                log.warning(
                    "session %s: responder %s is behind, its queue of %d is full; dropping %s "
                    "(further drops are counted, not logged)",
                    self._session_id,
                    type(self.responder).__name__,
                    self._queue.maxsize,
                    hook,
                )
            self.dropped[hook] += 1
            return False
        return True

    async def stop(self, timeout: float) -> None:
        """Let the responder drain its queue and run on_stop; cancel it after timeout seconds."""
        try:
            async with asyncio.timeout(timeout):
                await self._queue.put(_STOP)
                self._waiting += 1
                await asyncio.shield(self._task)
        except TimeoutError:
            log.error(
                "session %s: responder did not stop within %.1f s; cancelled",
                self._session_id,
                timeout,
            )
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        await self._call("start", ())
        self.started.set()
        while True:
            self._busy = False
            hook, args = await self._queue.get()
            self._waiting -= 1
            self._busy = True
            await self._call(hook, args)
            if hook == "stop":
                return

    async def _call(self, hook: str, args: tuple[Any, ...]) -> None:
        if (call := self._inline.get(hook)) is not None:
            self._call_plain(call, hook, args)
            return
        try:
            await getattr(self.responder, f"on_{hook}")(*args)
        except Exception:
            self._report(hook)

    def _call_plain(self, call: Callable[..., object], hook: str, args: tuple[Any, ...]) -> None:
        try:
            call(*args)
        except Exception:
            self._report(hook)

    def _report(self, hook: str) -> None:
        self.errors += 1
        log.exception(
            "session %s: responder %s raised in on_%s; the session goes on",
            self._session_id,
            type(self.responder).__name__,
            hook,
        )


def inline_hooks(responder: Responder) -> frozenset[str]:
    """The hooks a responder handles written as plain functions (called inline), by name
    without on_ (Responder's own defaults are all async)."""
    return frozenset(
        hook
        for hook in responder.hooks
        if not inspect.iscoroutinefunction(getattr(responder, f"on_{hook}"))
    )
