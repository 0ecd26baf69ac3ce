"""The socket side of a Realtime model: one WebSocket, reconnected with backoff, a bounded
queue of outgoing events, every incoming event parsed (bridge.speech.realtime_protocol) and
handed to plain callbacks in the order it came.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from bridge.retry import RetryPolicy
from bridge.speech.realtime_protocol import (
    RealtimeProtocolError,
    ServerEvent,
    encode,
    parse_server_event,
)

log = logging.getLogger(__name__)

RETRY_HTTP = frozenset({408, 429, 500, 502, 503, 504})  # handshake refusals worth retrying


@dataclass(frozen=True)
class ConnectSettings:
    """Timeouts, backoff and bounds of a model connection."""

    open_timeout_s: float = 10.0  # TCP, TLS and the upgrade
    ping_interval_s: float = 20.0
    ping_timeout_s: float = 20.0  # no pong in this long: the model is gone, reconnect
    close_timeout_s: float = 2.0
    backoff_s: float = 0.5  # first reconnect delay, doubled per failure (with jitter)
    max_backoff_s: float = 30.0
    send_queue: int = 250  # events waiting for the socket (250 are 5 s of 20 ms frames)
    max_message_bytes: int = 8 * 1024 * 1024


class RealtimeClient:
    """Keeps one connection to the model until stopped; run() in a task, send() from anywhere.

    on_open() gives the events that open each connection (session.update, context); they go
    before anything queued. on_event gets every parsed server event; on_down(reason, retry_in)
    each lost or refused connection (retry_in None: refused for good, no more attempts).
    """

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        settings: ConnectSettings,
        on_open: Callable[[], list[dict[str, Any]]],
        on_event: Callable[[ServerEvent], None],
        on_down: Callable[[str, float | None], None],
        name: str = "realtime",
    ) -> None:
        self.url = url
        self.settings = settings
        self.connected = False
        self.connections = 0
        self.bad_events: Counter[str] = Counter()
        self._headers = headers
        self._on_open = on_open
        self._on_event = on_event
        self._on_down = on_down
        self._name = name
        self._policy = RetryPolicy(backoff_s=settings.backoff_s)
        self._queue: asyncio.Queue[str] = asyncio.Queue(maxsize=settings.send_queue)

    def send(self, event: dict[str, Any]) -> bool:
        """Queue an event for the current connection; False when down or the queue is full."""
        if not self.connected:
            return False
        try:
            self._queue.put_nowait(encode(event))
        except asyncio.QueueFull:
            return False
        return True

    async def run(self) -> None:
        """Connect, serve, and reconnect after backoff, until cancelled or refused for good."""
        failures = 0
        while True:
            try:
                ws = await connect(
                    self.url,
                    additional_headers=self._headers,
                    open_timeout=self.settings.open_timeout_s,
                    ping_interval=self.settings.ping_interval_s,
                    ping_timeout=self.settings.ping_timeout_s,
                    close_timeout=self.settings.close_timeout_s,
                    max_size=self.settings.max_message_bytes,
                    compression=None,
                )
            except InvalidStatus as exc:
                status = exc.response.status_code
                reason = f"the model refused the connection: HTTP {status}"
                if status not in RETRY_HTTP:
                    self._on_down(reason, None)
                    return
            except (OSError, TimeoutError, InvalidHandshake) as exc:
                reason = f"cannot reach the model: {exc!r}"
            else:
                failures = 0
                reason = await self._serve(ws)
            delay = min(self.settings.max_backoff_s, self._policy.backoff(failures))
            failures += 1
            self._on_down(reason, delay)
            await asyncio.sleep(delay)

    async def _serve(self, ws: ClientConnection) -> str:
        """Run one connection: opening events, then the queue out and events in, until it ends."""
        self.connections += 1
        self._queue = asyncio.Queue(maxsize=self.settings.send_queue)  # none of the last one's
        opening = [encode(event) for event in self._on_open()]
        self.connected = True
        writer = asyncio.create_task(self._write(ws, opening), name=f"{self._name}-writer")
        try:
            async for message in ws:
                self._receive(message)
            return f"the model closed the connection ({ws.close_code} {ws.close_reason!r})"
        except ConnectionClosed as exc:
            return f"the connection was lost ({exc})"
        finally:
            self.connected = False
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await writer
            await ws.close()

    async def _write(self, ws: ClientConnection, opening: list[str]) -> None:
        for message in opening:
            await ws.send(message)
        while True:
            await ws.send(await self._queue.get())

    def _receive(self, message: str | bytes) -> None:
        try:
            event = parse_server_event(message)
        except RealtimeProtocolError as exc:
            kind = str(exc).partition(":")[0]
            if not self.bad_events[kind]:
                log.warning(
                    "%s: a malformed event from the model, ignored: %s "
                    "(more like it are counted, not logged)",
                    self._name,
                    exc,
                )
            self.bad_events[kind] += 1
            return
        if event is None:
            return
        try:
            self._on_event(event)
        except Exception:  # a bug in the handler: this event is lost, the connection goes on
            log.exception("%s: handling %s failed", self._name, type(event).__name__)
