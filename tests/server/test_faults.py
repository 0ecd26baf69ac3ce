"""Faults through real sockets and processes: resets, half-open sockets, reconnect storms,
churn. The session either goes on or ends with a log line and a metric; no other notices."""

import asyncio
import base64
import json
import logging
import os
import socket
import struct
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import httpx
import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.frames import Frame, Opcode
from websockets.protocol import Event

from bridge.sim.simulator import SimulatorOptions, simulate
from tests.helpers import eventually, session_of
from tests.server_process import ServerProcess
from tests.sounds import ALSA

HELLO = json.dumps({"protocol_version": 1, "bot_id": "b", "offset": 0.0})
OPTS = SimulatorOptions(lead_in_s=0.3, gap_s=2.5, listen_s=0.3)
WAV = [str(ALSA / "Front_Left.wav")]


def speak_alongside(url: str) -> tuple[list[float | None], int]:
    """A good session in a process of its own (no GIL shared with the fuzzers): the echo
    correlation of each utterance, and the player's underruns."""
    report = asyncio.run(simulate([url], WAV * 4, OPTS))
    return [u.echo_correlation for u in report.utterances], report.underruns


def raw_upgrade(port: int, path: str) -> socket.socket:
    """A WebSocket opened by hand: a TCP socket that did the handshake and nothing else."""
    sock = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    sock.sendall(request.encode())
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(4096)
    assert response.startswith(b"HTTP/1.1 101"), response
    return sock


def masked_frame(opcode: int, payload: bytes, claimed: int | None = None) -> bytes:
    """A client frame (masked); claimed lets the header promise more than is sent."""
    length = claimed if claimed is not None else len(payload)
    header = bytes([0x80 | opcode])
    if length > 125:
        header += bytes([0x80 | 126]) + struct.pack(">H", length)
    else:
        header += bytes([0x80 | length])
    mask = os.urandom(4)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def test_reset_mid_frame_ends_only_that_socket(start_bridge, caplog):
    caplog.set_level(logging.INFO, logger="bridge")
    server = await start_bridge("echo", grace_s=0.3)
    other = asyncio.create_task(simulate([f"ws://127.0.0.1:{server.port}/bots/other"], WAV, OPTS))
    sock = await asyncio.to_thread(raw_upgrade, server.port, "/bots/reset")
    sock.sendall(masked_frame(1, HELLO.encode()))
    sock.sendall(masked_frame(2, b"\x00" * 500, claimed=4000)[: 8 + 500])  # half a frame
    session = await session_of(server, "reset")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # RST
    await eventually(lambda: not session.links)
    # after its grace period, with its summary line (logged once its responder has stopped)
    await eventually(lambda: any("session reset ended" in r.getMessage() for r in caplog.records))
    assert session.ended
    assert session.stats.bytes_in == 0  # the half frame never counted as audio
    report = await other
    assert report.utterances[0].echo_correlation > 0.99 and report.underruns == 0


async def test_half_open_socket_is_caught_by_the_ping_timeout(start_bridge):
    server = await start_bridge(
        "echo", ping_interval_s=0.2, ping_timeout_s=0.3, close_timeout_s=0.5, grace_s=5
    )
    sock = await asyncio.to_thread(raw_upgrade, server.port, "/bots/half-open")
    sock.sendall(masked_frame(1, HELLO.encode()))
    session = await session_of(server, "half-open")
    started = time.monotonic()
    await eventually(lambda: not session.links, timeout=5)  # we never answer its pings
    assert time.monotonic() - started < 0.2 + 0.3 + 0.5 + 0.5
    assert not session.ended  # the session waits for the bot to come back
    async with connect(f"ws://127.0.0.1:{server.port}/bots/half-open") as ws:
        await ws.send(b"\x00" * 960)
        await eventually(lambda: session.stats.bytes_in == 960)
    assert server.sessions.total == 1
    sock.close()


class PingClock(ClientConnection):
    """A bot's client that notes when the bridge's first ping arrives."""

    first_ping: float | None = None

    def process_event(self, event: Event) -> None:
        if isinstance(event, Frame) and event.opcode is Opcode.PING and self.first_ping is None:
            self.first_ping = time.monotonic()
        super().process_event(event)


async def test_bots_that_connect_together_are_pinged_apart(start_bridge):
    interval = 0.5
    server = await start_bridge("echo", ping_interval_s=interval, ping_timeout_s=1.0)
    url = f"ws://127.0.0.1:{server.port}/bots/ping"
    opened = time.monotonic()
    bots = [await connect(f"{url}-{i}", create_connection=PingClock) for i in range(20)]
    try:
        await eventually(lambda: all(b.first_ping is not None for b in bots), timeout=5)
        after = sorted(b.first_ping - opened for b in bots)  # type: ignore[operator]
        assert interval - 0.05 <= after[0] and after[-1] <= 2 * interval + 0.3
        assert after[-1] - after[0] > 0.2  # spread over the interval, not one burst
    finally:
        for bot in bots:
            await bot.close()


async def test_reconnect_storm_keeps_one_session(start_bridge):
    server = await start_bridge("echo", grace_s=5)
    url = f"ws://127.0.0.1:{server.port}/bots/storm"
    baseline = len(asyncio.all_tasks())
    for _ in range(100):
        async with connect(url) as ws:
            await ws.send(HELLO)
            await ws.send(b"\x00" * 960)
    session = await session_of(server, "storm")
    await eventually(lambda: session.stats.bytes_in == 96000)
    await eventually(lambda: not session.links)
    assert server.sessions.total == 1 and session.stats.sockets == 100
    assert session.stats.dropped == {}
    await eventually(lambda: len(asyncio.all_tasks()) <= baseline + 1)  # no task left behind


def test_churn_of_10000_sessions_leaks_nothing():
    with ServerProcess("--grace-s", "0", "--log-level", "warning") as server:

        async def churn(n: int) -> None:
            frame = np.zeros(480, dtype=np.int16).tobytes()
            for i in range(n):
                async with connect(f"{server.url}/bots/churn-{i}?rate=24000") as ws:
                    await ws.send(HELLO)
                    await ws.send(frame)

        asyncio.run(churn(2000))  # warm up: caches, allocator pools
        time.sleep(0.5)
        rss, fds, tasks = server.rss_kb(), server.open_fds(), server.metrics()["speakbridge_tasks"]
        started = time.monotonic()
        asyncio.run(churn(10_000))
        elapsed = time.monotonic() - started
        settled = time.monotonic() + 5  # the last sockets (and a /metrics scrape) finish closing
        while server.open_fds() > fds and time.monotonic() < settled:
            time.sleep(0.1)
        assert server.open_fds() <= fds  # read, as at the start, before scraping /metrics
        metrics = server.metrics()
        assert metrics["speakbridge_sessions_total"] == 12_000
        assert metrics["speakbridge_sessions_active"] == 0
        assert metrics["speakbridge_tasks"] <= tasks
        growth = server.rss_kb() - rss
        assert growth < 8 * 1024, f"RSS grew by {growth} kB over 10,000 sessions"
        assert server.alive
        print(f"10,000 sessions in {elapsed:.1f} s; RSS {rss} -> {server.rss_kb()} kB")


def attack(port: int, examples: int) -> int:
    """Property-based: random binary and text frames, valid and invalid JSON, wrong types,
    huge and empty frames, from several clients at once; the server answers /healthz after
    each round. Returns the number of rounds."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=10,
    )
    speaker = st.fixed_dictionaries(
        {
            "name": st.text(),
            "id": st.integers() | st.text(),
            "timestamp": st.integers(),
            "isSpeaking": st.booleans(),
        }
    )
    message = st.one_of(
        st.binary(max_size=3000),
        st.binary(min_size=70_000, max_size=70_001),  # over --max-message-bytes
        st.text(max_size=300),
        json_values.map(json.dumps),
        st.lists(speaker, max_size=3).map(json.dumps),
        st.just(HELLO),
        st.just(""),
        st.just(b""),
    )
    counter = iter(range(10**6))
    rounds = 0

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(st.lists(message, max_size=25), min_size=1, max_size=4))
    def round_of(clients: list[list[bytes | str]]) -> None:
        nonlocal rounds

        async def client(messages: list[bytes | str]) -> None:
            try:
                async with connect(
                    f"ws://127.0.0.1:{port}/bots/fuzz-{next(counter)}", max_size=None
                ) as ws:
                    for m in messages:
                        await ws.send(m)
            except Exception:  # the server may close on us (1009, 4003): that is fine
                pass

        async def all_clients() -> None:
            await asyncio.gather(*(client(m) for m in clients))

        asyncio.run(all_clients())
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        rounds += 1

    round_of()
    return rounds


def test_bad_input_from_many_clients_at_once_leaves_others_intact():
    """The attackers run at the lowest CPU priority, as if on other hosts: on two cores the
    good session's player must not wait for them, while the server must serve them all."""
    with ServerProcess(
        "--grace-s", "0", "--max-message-bytes", "65536", "--log-level", "error"
    ) as server:
        spawn = get_context("spawn")
        speaker = ProcessPoolExecutor(1, mp_context=spawn)
        attacker = ProcessPoolExecutor(1, mp_context=spawn, initializer=os.nice, initargs=(19,))
        good = speaker.submit(speak_alongside, f"{server.url}/bots/good")
        time.sleep(1.5)  # the spawned interpreter imports, then the session is live
        rss_before = server.rss_kb()
        rounds = attacker.submit(attack, server.port, 60).result(timeout=600)
        correlations, underruns = good.result(timeout=60)
        speaker.shutdown()
        attacker.shutdown()
        assert server.alive
        assert rounds >= 1
        assert len(correlations) == 4
        assert all(c is not None and c > 0.99 for c in correlations), correlations
        assert underruns == 0
        assert server.metrics()["speakbridge_underruns_total"] == 0  # the server's own pacer
        time.sleep(0.3)
        assert server.rss_kb() - rss_before < 16 * 1024
