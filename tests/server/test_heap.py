"""Sessions kept out of full collections (bridge/server/heap.py), through real sessions."""

import asyncio
import gc
import logging
import weakref

import pytest
from websockets.asyncio.client import connect

from bridge.meetingbaas.lifecycle import AfterSession
from bridge.server.heap import SETTLE_S
from bridge.sim.simulator import SimulatorOptions, simulate
from tests.helpers import eventually, join_call, session_of
from tests.server.test_operations import HELLO, scrape
from tests.sounds import ALSA

WAV = [str(ALSA / "Front_Left.wav")]
OPTS = SimulatorOptions(lead_in_s=0.3, gap_s=0.5, listen_s=0.3)


async def run_session(server, session_id: str) -> list[weakref.ref]:
    """One simulated bot's whole call; weak references to its session, playout and responders."""
    bot = asyncio.create_task(
        simulate([f"ws://127.0.0.1:{server.port}/bots/{session_id}"], WAV, OPTS)
    )
    session = await eventually(
        lambda: (s := server.sessions.sessions.get(session_id)) is not None and s.started and s
    )
    # what the lifecycle keeps for the bot's final webhook (the recorder, and through its
    # handle the playout) is not watched
    kept = [r for r in session.runners if kept_on_purpose(r)]
    watched = [weakref.ref(session)] + ([] if kept else [weakref.ref(session.playout)])
    watched += [weakref.ref(r.responder) for r in session.runners if r not in kept]
    del session
    await bot
    await eventually(lambda: session_id not in server.sessions.sessions)
    return watched


def kept_on_purpose(runner) -> bool:
    return isinstance(runner.responder, AfterSession)


@pytest.mark.parametrize(
    ("responder", "options"),
    [
        ("echo", ("mode=live",)),
        ("echo", ()),
        ("recorder", ("dir={tmp}",)),
        ("player", (f"file={ALSA / 'Noise.wav'}",)),
        ("tts", ()),
    ],
)
async def test_an_ended_session_is_freed_by_reference_counting_alone(
    start_bridge, tmp_path, responder, options
):
    server = await start_bridge(
        responder, tuple(o.format(tmp=tmp_path) for o in options), grace_s=0.0
    )
    gc.collect()
    gc.disable()  # nothing but reference counting frees it
    try:
        watched = await run_session(server, "freed")
        await eventually(lambda: all(ref() is None for ref in watched), timeout=5)
    finally:
        gc.enable()


async def test_a_live_session_is_frozen_out_of_full_collections(start_bridge):
    server = await start_bridge()
    async with connect(f"ws://127.0.0.1:{server.port}/bots/frozen") as ws:
        await join_call(ws, HELLO)
        session = await session_of(server, "frozen")
        await eventually(lambda: session.started)
        tracked = weakref.ref(session.playout)
        freezes = server.heap.freezes
        await asyncio.sleep(SETTLE_S + 0.2)
        assert server.heap.freezes == freezes + 1  # sessions that start together: one freeze
        assert not any(o is tracked() for o in gc.get_objects())  # no collection walks it
        metrics = await scrape(server)
        assert metrics["speakbridge_gc_freezes_total"] == server.heap.freezes
        assert metrics["speakbridge_gc_reclaims_total"] == 0


async def test_ended_sessions_a_cycle_keeps_are_reclaimed_by_one_collection(start_bridge, caplog):
    server = await start_bridge(
        "echo,tests.responders:KeepsACycle", gc_reclaim_sessions=2, grace_s=0.0
    )
    with caplog.at_level(logging.INFO, logger="bridge.server.heap"):
        first = await run_session(server, "cycle-1")
        await asyncio.sleep(SETTLE_S + 0.3)
        kept = first[-1]()  # the responder: frozen in its cycle, one ended session is not enough
        assert kept is not None and server.heap.kept == 1 and server.heap.reclaims == 0
        del kept
        second = await run_session(server, "cycle-2")
        await eventually(lambda: server.heap.reclaims == 1)
        assert all(ref() is None for ref in first + second)
    assert server.heap.kept == 0 and server.heap.reclaimed == 2
    reclaims = [r.getMessage() for r in caplog.records if "ended sessions" in r.getMessage()]
    assert len(reclaims) == 1
    assert reclaims[0].startswith("2 ended sessions were still alive: a full collection freed 2")
    metrics = await scrape(server)
    assert metrics["speakbridge_gc_reclaims_total"] == 1
