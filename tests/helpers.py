"""Helpers for end-to-end tests: waiting on the server, a control-channel client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect

from bridge.server.server import BridgeServer
from bridge.server.session import Session

ADMITTED = (np.arange(480) % 7 - 3).astype("<i2").tobytes()  # 20 ms of a faint hum: signal


async def join_call(ws: ClientConnection, hello: str) -> None:
    """What a bot sends as it is admitted: its hello, then meeting audio with signal."""
    await ws.send(hello)
    await ws.send(ADMITTED)


async def eventually(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll until condition() is truthy; returns its value."""
    async with asyncio.timeout(timeout):
        while not (value := condition()):
            await asyncio.sleep(0.01)
    return value


async def session_of(server: BridgeServer, session_id: str) -> Session:
    return await eventually(lambda: server.sessions.sessions.get(session_id))


class Control:
    """A control-channel client that keeps every event it receives."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self.replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, server: BridgeServer, session_id: str) -> Control:
        await session_of(server, session_id)
        return cls(await connect(f"ws://127.0.0.1:{server.port}/control/{session_id}"))

    async def command(self, command: dict[str, Any] | str) -> dict[str, Any]:
        await self.ws.send(command if isinstance(command, str) else json.dumps(command))
        return await asyncio.wait_for(self.replies.get(), 10)

    async def wait_event(self, kind: str, timeout: float = 20.0, **match: Any) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            for event in self.events:
                if event["type"] == kind and all(event.get(k) == v for k, v in match.items()):
                    return event
            return None

        return await eventually(found, timeout)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    async def close(self) -> None:
        self._reader.cancel()
        await self.ws.close()

    async def _read(self) -> None:
        async for message in self.ws:
            data = json.loads(message)
            if data["type"] in ("ok", "error"):
                self.replies.put_nowait(data)
            else:
                self.events.append(data)
