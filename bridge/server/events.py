"""A session's event stream: what happened, as JSON-ready dicts, fanned out to bounded subscribers.

Subscribers are the control channel's clients (a bounded queue each) and the responders
(through their own bounded queues). A full subscriber loses the event, which is counted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from bridge.responder import Event

log = logging.getLogger(__name__)

Listener = Callable[[Event, object], None]  # (event, source) -> None


class EventHub:
    """Stamps events with the session id and time, and hands them to every subscriber."""

    def __init__(self, session_id: str, queue_size: int) -> None:
        self.session_id = session_id
        self.queue_size = queue_size
        self._queues: set[asyncio.Queue[Event]] = set()
        self._listeners: list[Listener] = []
        self.dropped = 0
        self.published = 0

    def subscribe(self) -> asyncio.Queue[Event]:
        """A bounded queue that receives every event from now on; unsubscribe() when done."""
        queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=self.queue_size)
        self._queues.add(queue)
        return queue

    @property
    def subscribers(self) -> int:
        """Queues subscribed: the session's control clients."""
        return len(self._queues)

    def unsubscribe(self, queue: asyncio.Queue[Event]) -> None:
        self._queues.discard(queue)

    def listen(self, listener: Listener) -> None:
        """Call listener(event, source) for every event (it must not block)."""
        self._listeners.append(listener)

    def release(self) -> None:
        """Its session has ended: no listener is called again (they made cycles)."""
        self._listeners.clear()

    def publish(self, kind: str, source: object = None, **fields: Any) -> Event:
        """Send an event of type kind; source (a responder; None: the session) is passed on."""
        event = {"type": kind, "session": self.session_id, "time": time.time(), **fields}
        self.published += 1
        for queue in self._queues:
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                if not self.dropped:
                    log.warning(
                        "session %s: an event subscriber is behind; dropping events "
                        "(further drops are counted)",
                        self.session_id,
                    )
                self.dropped += 1
        for listener in self._listeners:
            listener(event, source)
        return event
