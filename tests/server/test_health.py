"""What a load balancer is told: /healthz says 503 when the sessions table is full (draining:
tests/server/test_operations.py), and a draining bridge's refusals keep their meaning."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.helpers import session_of


async def test_healthz_says_full_at_max_sessions_and_ok_again_after(start_bridge):
    server = await start_bridge(max_sessions=1, grace_s=0.1)
    health = f"http://127.0.0.1:{server.port}/healthz"
    async with httpx.AsyncClient() as http:
        assert (await http.get(health)).status_code == 200
        async with connect(f"ws://127.0.0.1:{server.port}/bots/only"):
            await session_of(server, "only")
            full = await http.get(health)
            assert full.status_code == 503 and full.text == "full (1 sessions)\n"
        for _ in range(100):  # the session ends after its grace period
            if not server.sessions.sessions:
                break
            await asyncio.sleep(0.05)
        assert (await http.get(health)).text == "ok\n"


async def test_a_draining_bridge_still_refuses_an_ended_session_with_410(start_bridge):
    """Behind a balancer a 503 is retried on another bridge, which would start the session
    again: an ended session must stay 410 (final) while its bridge drains."""
    server = await start_bridge()
    base = f"ws://127.0.0.1:{server.port}/bots"
    async with connect(f"{base}/live"), connect(f"{base}/left"):
        await session_of(server, "live")
        await session_of(server, "left")
        assert server.sessions.finish("left", "leave command")
        drain = asyncio.create_task(server.drain(5))
        await asyncio.sleep(0.05)
        for session, status in (("left", 410), ("new", 503)):
            with pytest.raises(InvalidStatus) as refused:
                async with connect(f"{base}/{session}"):
                    pass
            assert refused.value.response.status_code == status
    await drain
