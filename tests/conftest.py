from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from bridge.cli import responder_factories
from bridge.config import BridgeConfig
from bridge.server.server import BridgeServer

StartBridge = Callable[..., Awaitable[BridgeServer]]


@pytest.fixture
async def start_bridge() -> AsyncIterator[StartBridge]:
    """Start real bridge servers on loopback (port 0); all are closed after the test."""
    servers: list[BridgeServer] = []

    async def start(
        responder: str = "echo", options: tuple[str, ...] = (), **settings
    ) -> BridgeServer:
        settings.setdefault("grace_s", 5.0)
        # the test's own bots run on the server's loop thread: their CPU is not the server's
        settings.setdefault("admit_max_core_share", 0.0)
        server = BridgeServer(
            BridgeConfig(port=0, **settings),
            responder_factories(responder.split(","), list(options)),
        )
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()
