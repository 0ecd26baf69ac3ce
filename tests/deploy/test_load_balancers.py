"""Three bridges behind real HAProxy and nginx, configured by `speakbridge lb-config`: sessions
hash onto them by id, both sockets of a split session reach the same bridge, and a drained or
killed bridge moves no session that need not move."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.deploy.balancers import Bridge, LoadBalancer, placement, spread, wait_for
from tests.deploy.bots import Gen3Bot

# Three hosts on loopback at one fixed port: nginx places a server on its hash ring by its
# address, so fixed addresses (and the fixed session ids below) make the spread reproducible.
HOSTS = ("127.0.22.1", "127.0.22.2", "127.0.22.3")
PORT = 28765
SESSIONS = 200
EVEN = SESSIONS / len(HOSTS)


def session_ids(count: int, seed: int) -> list[str]:
    """Ids as `speakbridge launch` makes them (uuid4 hex), from a fixed seed."""
    rng = random.Random(seed)
    return [uuid.UUID(int=rng.getrandbits(128), version=4).hex for _ in range(count)]


@pytest.fixture(params=["haproxy", "nginx"])
def deployment(request, tmp_path: Path) -> Iterator[tuple[list[Bridge], LoadBalancer]]:
    bridges: list[Bridge] = []
    balancer = None
    try:
        for i, host in enumerate(HOSTS):
            bridges.append(
                Bridge(
                    tmp_path,
                    f"bridge{i}",
                    "--port", str(PORT),
                    "--trusted-proxies", "127.0.0.1",
                    "--grace-s", "60",
                    "--drain-timeout-s", "120",
                    host=host,
                )
            )  # fmt: skip
        balancer = LoadBalancer(request.param, [b.address for b in bridges], tmp_path / "lb")
        wait_for(lambda: all(b.health() == 200 for b in bridges), 15, "the bridges")
        yield bridges, balancer
    finally:
        if balancer is not None:
            balancer.stop()
        for bridge in bridges:
            bridge.stop()


def source(i: int) -> str:
    """Bot i's own loopback address (127.0.1.1 on): the bridges know each bot by the address
    the balancer forwards (X-Forwarded-For), so one bot's refusals never block another."""
    return f"127.0.{1 + i // 250}.{1 + i % 250}"


async def start_bots(base: str, sessions: list[str], first: int = 0) -> list[Gen3Bot]:
    """Half the sessions split (output + input sockets), half on one socket both ways."""
    bots = [
        Gen3Bot(base, s, split=i % 2 == 0, source=source(first + i)) for i, s in enumerate(sessions)
    ]
    for bot in bots:
        bot.start()
    await until(lambda: all(b.up for b in bots), 60, "every bot's sockets to open")
    return bots


async def until(condition, timeout: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


def whole_on_one_bridge(bots: list[Gen3Bot], bridges: list[Bridge]) -> dict[str, int]:
    """Every bot's session on exactly one bridge with all its sockets; session -> bridge."""
    placed = placement(bridges)
    for bot in bots:
        assert bot.session in placed, f"session {bot.session} is on no bridge"
        where, sockets = placed[bot.session]
        assert sockets == len(bot.sockets), f"{bot.session}: {sockets} sockets on bridge {where}"
    return {s: where for s, (where, _) in placed.items()}


async def control_reaches(base: str, session: str) -> None:
    """The control channel through the balancer reaches the session (a bridge without it
    refuses with 404) and answers a command."""
    async with connect(f"{base}/control/{session}", open_timeout=10) as ws:
        await ws.send(json.dumps({"type": "interrupt"}))
        async with asyncio.timeout(10):
            while (reply := json.loads(await ws.recv())).get("type") != "ok":
                assert reply.get("type") != "error", reply
        assert reply == {"type": "ok", "command": "interrupt"}


async def test_sessions_hash_onto_bridges_whole_and_survive_a_kill_and_a_drain(deployment):
    bridges, balancer = deployment
    sessions = session_ids(SESSIONS, seed=22)
    bots = await start_bots(balancer.ws, sessions)
    try:
        where = whole_on_one_bridge(bots, bridges)
        counts = spread(placement(bridges), sessions)
        assert all(0.8 * EVEN <= counts[i] <= 1.2 * EVEN for i in range(3)), counts

        # The control channel and /sessions?session=ID reach each session's own bridge.
        await asyncio.gather(*(control_reaches(balancer.ws, s) for s in sessions))
        async with httpx.AsyncClient(timeout=10) as client:
            for session in sessions:
                listing = await client.get(f"{balancer.http}/sessions", params={"session": session})
                assert session in {e["session"] for e in listing.json()}
            assert (await client.get(f"{balancer.http}/metrics")).status_code == 404

        # Kill one bridge: its bots reconnect (gen3 backoff) and their sessions start again,
        # whole, on the other bridges; nobody else's socket drops.
        dead = 1
        bridges[dead].stop()
        moved = [b for b in bots if where[b.session] == dead]
        others = [b for b in bots if where[b.session] != dead]
        await until(lambda: all(b.up and min(b.connects) >= 2 for b in moved), 45, "the moved bots")
        after = whole_on_one_bridge(bots, bridges)
        assert {after[b.session] for b in moved} <= {0, 2}
        assert all(b.connects == [1] * len(b.sockets) for b in others)
        assert all(after[b.session] == where[b.session] for b in others)

        # SIGTERM another: it drains, keeps every live session (no socket drops), and new
        # sessions, split ones whole, go to the last bridge.
        draining = 0
        kept = placement(bridges)
        before = {b.session: list(b.connects) for b in bots}
        bridges[draining].signal(signal.SIGTERM)
        wait_for(lambda: bridges[draining].health() == 503, 10, "the drain to start")
        fresh = await start_bots(balancer.ws, session_ids(30, seed=23), first=SESSIONS)
        try:
            final = whole_on_one_bridge(bots + fresh, bridges)
            assert {final[b.session] for b in fresh} == {2}
            assert all(b.up and b.connects == before[b.session] for b in bots)
            on_drained = {s for s, (i, _) in kept.items() if i == draining}
            assert {s for s, i in final.items() if i == draining} == on_drained

            # A socket of a live session on the draining bridge drops and reconnects: it
            # reaches the same bridge, which takes it back (the session stays whole).
            blips = [b for b in bots if b.session in on_drained and len(b.sockets) == 2][:5]
            assert blips, "no split session on the draining bridge"
            opened = {b.session: b.connects[1] for b in blips}
            for bot in blips:
                await bot.drop(1)
            await until(
                lambda: all(b.up and b.connects[1] == opened[b.session] + 1 for b in blips),
                20,
                "the reconnects",
            )
            again = whole_on_one_bridge(bots + fresh, bridges)
            assert all(again[b.session] == draining for b in blips)
        finally:
            await asyncio.gather(*(b.stop() for b in fresh))
    finally:
        await asyncio.gather(*(b.stop() for b in bots))
