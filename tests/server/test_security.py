"""Closed by default, limits that lock out only who fails to authenticate, and caps: each
through a real server on loopback (docs/security.md)."""

import asyncio
import json
import socket
import subprocess
import sys

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidMessage, InvalidStatus

from bridge.config import BridgeConfig
from bridge.wire.signing import signed_url
from tests.helpers import eventually

SECRET = "s3cret"
HELLO = json.dumps({"protocol_version": 1, "bot_id": "b", "offset": 0.0})


async def status_of(url: str, **options) -> int:
    with pytest.raises(InvalidStatus) as info:
        async with connect(url, **options):
            pass
    return info.value.response.status_code


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.168.1.10", "bridge.example"])
def test_a_reachable_host_without_a_secret_is_refused(host):
    with pytest.raises(ValueError, match="without --secret"):
        BridgeConfig(host=host)
    BridgeConfig(host=host, secret="k")  # signed: fine
    BridgeConfig(host=host, allow_unsigned=True)  # open, on purpose


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_may_go_unsigned(host):
    BridgeConfig(host=host)


def test_serve_on_every_interface_without_a_secret_exits_with_the_fix():
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "serve", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--secret" in done.stderr and "--allow-unsigned" in done.stderr


async def test_a_browser_origin_is_refused_unless_listed(start_bridge):
    server = await start_bridge(allowed_origins=("https://app.example",))
    base = f"ws://127.0.0.1:{server.port}"
    async with connect(f"{base}/bots/o1"):  # a bot: no Origin header
        await asyncio.sleep(0.05)
    evil = {"origin": "https://evil.example"}
    for path in ("/bots/o2", "/control/o1"):
        assert await status_of(f"{base}{path}", **evil) == 403
    async with httpx.AsyncClient() as http:
        listing = await http.get(f"http://127.0.0.1:{server.port}/sessions", headers=evil)
        assert listing.status_code == 403
        health = await http.get(f"http://127.0.0.1:{server.port}/healthz", headers=evil)
        assert health.status_code == 200
    async with connect(f"{base}/control/o1", origin="https://app.example"):
        pass
    assert "o2" not in server.sessions.sessions


async def test_metrics_can_need_a_bearer_token(start_bridge):
    server = await start_bridge(metrics_token="m-token")
    url = f"http://127.0.0.1:{server.port}/metrics"
    async with httpx.AsyncClient() as http:
        assert (await http.get(url)).status_code == 401
        wrong = await http.get(url, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        page = await http.get(url, headers={"Authorization": "Bearer m-token"})
    assert page.status_code == 200 and "speakbridge_sessions_active" in page.text


async def test_failed_tokens_lock_out_bot_urls_but_never_health_or_metrics(start_bridge):
    server = await start_bridge(secret=SECRET, handshake_failures=3)
    base = f"ws://127.0.0.1:{server.port}"
    for _ in range(3):
        assert await status_of(f"{base}/bots/s1?token=1.{'0' * 32}") == 403
    assert await status_of(signed_url(base, SECRET, "s1", "dual", {}, 60)) == 429
    async with httpx.AsyncClient() as http:
        for _ in range(5):
            assert (await http.get(f"http://127.0.0.1:{server.port}/healthz")).status_code == 200
            assert (await http.get(f"http://127.0.0.1:{server.port}/metrics")).status_code == 200


async def test_a_bot_retrying_a_full_server_is_never_locked_out(start_bridge):
    server = await start_bridge(max_sessions=1, handshake_failures=3, grace_s=0)
    base = f"ws://127.0.0.1:{server.port}/bots"
    async with connect(f"{base}/first"):
        await asyncio.sleep(0.05)
        for _ in range(6):
            assert await status_of(f"{base}/second") == 503  # full: not a failure of its own
        async with connect(f"{base}/first/input"):
            for _ in range(5):
                assert await status_of(f"{base}/first/output") == 409  # busy session: neither
    await eventually(lambda: not server.sessions.sessions)
    async with connect(f"{base}/second"):  # room again, and it was never blocked
        await asyncio.sleep(0.05)


async def test_a_trusted_proxys_forwarded_address_is_the_one_limited(start_bridge):
    server = await start_bridge(secret=SECRET, handshake_failures=3, trusted_proxies="127.0.0.0/8")
    base = f"ws://127.0.0.1:{server.port}"
    good = signed_url(base, SECRET, "s1", "dual", {}, 60)
    bad = f"{base}/bots/s1?token=1.{'0' * 32}"

    def via(client: str) -> dict:
        return {"additional_headers": {"X-Forwarded-For": f"{client}, 127.0.0.5"}}

    for _ in range(3):
        assert await status_of(bad, **via("203.0.113.7")) == 403
    assert await status_of(good, **via("203.0.113.7")) == 429  # the failing client is blocked
    async with connect(good, **via("203.0.113.8")):  # another client through the same proxy
        await asyncio.sleep(0.05)


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(start_bridge):
    server = await start_bridge(secret=SECRET, handshake_failures=3)
    base = f"ws://127.0.0.1:{server.port}"
    for n in range(3):  # a new made-up address each time: it is still the peer that fails
        spoof = {"additional_headers": {"X-Forwarded-For": f"198.51.100.{n}"}}
        assert await status_of(f"{base}/bots/s1?token=1.{'0' * 32}", **spoof) == 403
    assert await status_of(signed_url(base, SECRET, "s1", "dual", {}, 60)) == 429


async def scrape(server) -> str:
    async with httpx.AsyncClient() as http:
        return (await http.get(f"http://127.0.0.1:{server.port}/metrics")).text


def metric(page: str, name: str) -> float:
    (line,) = [line for line in page.splitlines() if line.startswith(name + " ")]
    return float(line.split()[1])


async def test_connections_stuck_in_the_handshake_are_capped_and_counted(start_bridge):
    server = await start_bridge(max_pending_handshakes=4)
    loop = asyncio.get_running_loop()
    idle = []
    for _ in range(4):  # slow clients: connected, no request yet
        sock = socket.create_connection(("127.0.0.1", server.port))
        idle.append(sock)
    await eventually(lambda: server.gate.pending == 4)
    extra = socket.create_connection(("127.0.0.1", server.port))
    extra.setblocking(False)
    assert await asyncio.wait_for(loop.sock_recv(extra, 100), 5) == b""  # dropped at once
    await eventually(lambda: server.gate.refused["pending_handshakes"] == 1)
    for sock in [*idle, extra]:
        sock.close()
    await eventually(lambda: server.gate.pending == 0)
    page = await scrape(server)  # a real client gets through again
    assert metric(page, "speakbridge_pending_handshakes") == 1  # the scrape itself
    assert 'speakbridge_connections_refused_total{reason="pending_handshakes"} 1.0' in page


async def test_connections_per_address_are_capped(start_bridge):
    server = await start_bridge(max_connections_per_address=3)
    base = f"ws://127.0.0.1:{server.port}/bots"
    async with connect(f"{base}/a"), connect(f"{base}/b"), connect(f"{base}/c"):
        with pytest.raises(InvalidMessage):  # dropped before any answer
            async with connect(f"{base}/d", open_timeout=5):
                pass
        assert server.gate.refused["connections_per_address"] == 1
        assert "d" not in server.sessions.sessions
    await eventually(lambda: server.gate.open_from("127.0.0.1") == 0)
    page = await scrape(server)
    assert 'speakbridge_connections_refused_total{reason="connections_per_address"} 1.0' in page


async def test_control_clients_of_a_session_are_capped(start_bridge):
    server = await start_bridge(max_control_clients=2)
    base = f"ws://127.0.0.1:{server.port}"
    async with connect(f"{base}/bots/ctl") as bot:
        await bot.send(HELLO)
        await eventually(lambda: "ctl" in server.sessions.sessions)
        async with connect(f"{base}/control/ctl"), connect(f"{base}/control/ctl"):
            session = server.sessions.sessions["ctl"]
            await eventually(lambda: session.events.subscribers == 2)
            assert await status_of(f"{base}/control/ctl") == 429
            assert metric(await scrape(server), "speakbridge_control_clients") == 2
        await eventually(lambda: session.events.subscribers == 0)
        async with connect(f"{base}/control/ctl"):  # room again
            await eventually(lambda: session.events.subscribers == 1)
