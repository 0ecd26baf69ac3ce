"""/healthz: 503 when the sessions table is full (draining: tests/server/test_operations.py)."""

from __future__ import annotations

import asyncio

import httpx
from websockets.asyncio.client import connect

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
