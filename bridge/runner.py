"""Runs one responder in its own task, fed through a bounded queue, isolated from the session."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from typing import Any

from bridge.plugins.base import Responder

log = logging.getLogger(__name__)

_STOP: tuple[str, tuple[Any, ...]] = ("stop", ())


class ResponderRunner:
    """Delivers hooks in order; a full queue drops the item (counted), a raising hook is logged."""

    def __init__(self, responder: Responder, queue_size: int, session_id: str) -> None:
        self.responder = responder
        self._queue: asyncio.Queue[tuple[str, tuple[Any, ...]]] = asyncio.Queue(maxsize=queue_size)
        self._session_id = session_id
        self.dropped: Counter[str] = Counter()
        self.errors = 0
        self._task = asyncio.create_task(self._run(), name=f"responder-{session_id}")

    def offer(self, hook: str, *args: Any) -> bool:
        """Queue a hook call without waiting; False (and counted) when the queue is full."""
        try:
            self._queue.put_nowait((hook, args))
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
        while True:
            hook, args = await self._queue.get()
            await self._call(hook, args)
            if hook == "stop":
                return

    async def _call(self, hook: str, args: tuple[Any, ...]) -> None:
        method = getattr(self.responder, f"on_{hook}")
        try:
            await method(*args)
        except Exception:
            self.errors += 1
            log.exception(
                "session %s: responder %s raised in on_%s; the session goes on",
                self._session_id,
                type(self.responder).__name__,
                hook,
            )
