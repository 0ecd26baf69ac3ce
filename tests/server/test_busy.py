"""A bridge whose event loop nears its core refuses new sessions (503, /healthz says busy),
keeps serving the ones it holds, says so once, and admits again once the load is gone: a
real server, a responder burning real CPU on the loop, real sockets."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from bridge.server.coreload import CoreLoad
from bridge.sim.simulator import SimulatorOptions, simulate
from tests.helpers import eventually
from tests.server.test_operations import scrape
from tests.sounds import ALSA

BURNING = SimulatorOptions(lead_in_s=0.2, gap_s=6.0, listen_s=0.5)  # ~8 s of frames, echoed


async def test_a_busy_bridge_refuses_new_sessions_serves_its_own_and_recovers(start_bridge, caplog):
    caplog.set_level(logging.INFO, logger="bridge.server.server")
    server = await start_bridge(
        "echo,tests.responders:BurnsTheCore", admit_max_core_share=0.4, admit_window_s=1.0
    )
    base = f"ws://127.0.0.1:{server.port}/bots"
    health = f"http://127.0.0.1:{server.port}/healthz"
    burner = asyncio.create_task(
        simulate([f"{base}/burner"], [str(ALSA / "Front_Center.wav")], BURNING)
    )
    await eventually(lambda: server.core_load.busy, timeout=10)
    async with httpx.AsyncClient() as http:
        busy = await http.get(health)
        assert busy.status_code == 503 and busy.text.startswith("busy (")
        assert busy.text.endswith("% of its core)\n")
        metrics = await scrape(server)
        assert metrics["speakbridge_busy"] == 1
        assert metrics["speakbridge_event_loop_cpu_share"] >= 0.4
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"{base}/newcomer"):
                pass
        assert refused.value.response.status_code == 503
        assert b"the server is busy" in refused.value.response.body
        assert "newcomer" not in server.sessions.sessions
        report = await burner  # the session it held was served to the end
        assert report.bytes_received > 0 and report.reconnects == 0 and not report.refused
        await eventually(lambda: not server.core_load.busy, timeout=10)
        assert (await http.get(health)).text == "ok\n"
    async with connect(f"{base}/newcomer"):
        await eventually(lambda: "newcomer" in server.sessions.sessions, timeout=5)
    said = [r.getMessage() for r in caplog.records if r.name == "bridge.server.server"]
    assert len([m for m in said if m.startswith("busy: the event loop used")]) == 1
    assert len([m for m in said if m.startswith("no longer busy")]) == 1


def test_the_share_is_the_loop_threads_cpu_over_a_full_window():
    now, cpu = [0.0], [0.0]
    load = CoreLoad(0.9, 3.0, clock=lambda: now[0], cpu=lambda: cpu[0])
    changes = []
    for step_cpu in (0.95, 0.95, 0.95, 0.95, 0.5, 0.5, 0.5):
        now[0] += 1.0
        cpu[0] += step_cpu
        changes.append(load.sample())
    # busy only once the window (3 s: 4 samples) is full and its share >= 0.9; not busy again
    # once the quieter seconds bring the share under it
    assert changes == [False, False, False, True, True, False, False]
    assert load.share == pytest.approx(0.5)
    never = CoreLoad(0.0, 1.0, clock=lambda: now[0], cpu=lambda: cpu[0])
    for _ in range(3):
        now[0] += 1.0
        cpu[0] += 1.0
        assert never.sample() is False
    assert never.share == pytest.approx(1.0) and not never.busy
