"""A live stream's lone frame waits for the next when the lead allows: two frames, one
message; a timer sends it alone if the next is late; pause, interrupt and close see it."""

import asyncio
import sys
import time

import numpy as np
import pytest

from bridge.server._playout import HoldSweep, LatencyProbe, SpeechSender
from bridge.server.histogram import LATENCY_BUCKETS_S
from bridge.server.playout import Playout

RATE = 24000
FRAME = 480  # 20 ms


class Sink:
    """What the bot receives: each message, when it was sent, and the lead it then had."""

    def __init__(self, playout: Playout) -> None:
        self.playout = playout
        self.chunks: list[np.ndarray] = []
        self.lead_before: list[float] = []  # what the bot still had to play as each came
        self.ready = asyncio.Event()
        self.ready.set()

    def send(self, data: bytes) -> None:
        self.lead_before.append(self.playout.pacer.lead_at(time.monotonic()))
        self.chunks.append(np.frombuffer(data, dtype=np.int16))

    def samples(self) -> np.ndarray:
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)


def playout_of(prebuffer_ms: float, min_message_ms: int = 40) -> Playout:
    return Playout(
        RATE, 20, lead_ms=80, capacity_s=1, max_pending=4,
        prebuffer_ms=prebuffer_ms, min_message_ms=min_message_ms,
    )  # fmt: skip


def frame_of(i: int) -> np.ndarray:
    return np.arange(i * FRAME, (i + 1) * FRAME, dtype=np.int64).astype(np.int16)


async def at_real_time(frames: int, write, start: float, first: int = 0) -> None:
    """Write frames first.. one each 20 ms from start, as a bot's live audio comes."""
    for i in range(first, first + frames):
        await asyncio.sleep(max(0.0, start + i * 0.02 - time.monotonic()))
        write(frame_of(i))


@pytest.fixture
async def live():
    """A 60 ms prebuffer at 20 ms frames: the bot has 40 ms left as each frame comes."""
    playout = playout_of(prebuffer_ms=60)
    sink = Sink(playout)
    task = asyncio.create_task(playout.run(lambda: sink.send, sink.ready))
    await asyncio.sleep(0)
    stream = await playout.open_stream()
    yield playout, sink, stream
    task.cancel()


async def settle(sink: Sink, samples: int) -> None:
    async with asyncio.timeout(1):
        while len(sink.samples()) < samples:
            await asyncio.sleep(0.002)


async def test_live_frames_go_two_to_a_message_in_time_and_intact(live):
    playout, sink, stream = live
    await at_real_time(50, stream.write, time.monotonic())
    stream.close()
    await settle(sink, 50 * FRAME)
    assert np.array_equal(sink.samples(), np.concatenate([frame_of(i) for i in range(50)]))
    sizes = [len(c) for c in sink.chunks]
    assert sizes[0] == 3 * FRAME  # the prebuffer, whole
    # on a quiet loop every later pair goes together; a late frame may split one
    assert sizes.count(2 * FRAME) >= 15 and len(sizes) <= 32
    assert playout.pacer.underruns == 0
    assert min(sink.lead_before[1:]) > 0.005  # each came while the bot still played


async def test_at_the_default_prebuffer_a_frame_goes_at_once(live):
    playout = playout_of(prebuffer_ms=40)  # the bot has 20 ms left as a frame comes: no room
    sink = Sink(playout)
    task = asyncio.create_task(playout.run(lambda: sink.send, sink.ready))
    await asyncio.sleep(0)
    stream = await playout.open_stream()
    held = []

    def write(frame: np.ndarray) -> None:
        stream.write(frame)
        held.append(playout.held_samples)

    await at_real_time(20, write, time.monotonic())
    assert held == [0] * 20
    assert [len(c) for c in sink.chunks].count(FRAME) >= 15  # each frame alone, at once
    stream.close()
    task.cancel()


async def start_holding(playout: Playout, stream, start: float) -> int:
    """Frames at real time until one is held; returns how many were written."""
    for i in range(20):
        await asyncio.sleep(max(0.0, start + i * 0.02 - time.monotonic()))
        stream.write(frame_of(i))
        if playout.held_samples:
            return i + 1
    raise AssertionError("no frame was held")


async def test_a_held_frame_goes_alone_with_half_a_frame_of_lead_when_the_next_is_late(live):
    playout, sink, stream = live
    written = await start_holding(playout, stream, time.monotonic())
    assert playout.held_samples == FRAME
    # a frame spoken now waits behind the held one, as behind a queued one
    lead = playout.pacer.lead_at(time.monotonic())
    assert playout.delay() == pytest.approx(max(0.0, 2 * 0.02 + lead - 0.08), abs=0.001)
    sent = len(sink.chunks)
    await settle(sink, written * FRAME)  # no next frame: the timer sends it
    assert len(sink.chunks) == sent + 1 and len(sink.chunks[-1]) == FRAME
    assert 0 < sink.lead_before[-1] <= 0.015  # half a frame left, give or take the loop
    assert playout.pacer.underruns == 0 and playout.held_samples == 0
    stream.close()


async def test_pause_holds_a_held_frame_and_resume_sends_it_in_order(live):
    playout, sink, stream = live
    written = await start_holding(playout, stream, time.monotonic())
    playout.pause()
    assert playout.held_samples == 0 and playout.queue.available == FRAME
    await asyncio.sleep(0.08)  # its timer would have fired by now
    assert len(sink.samples()) == (written - 1) * FRAME
    playout.resume()  # the bot ran dry meanwhile: the prebuffer (3 frames) queues first
    stream.write(frame_of(written))
    stream.write(frame_of(written + 1))
    await settle(sink, (written + 2) * FRAME)
    assert np.array_equal(sink.samples(), np.concatenate([frame_of(i) for i in range(written + 2)]))
    stream.close()


async def test_an_interrupt_drops_a_held_frame_and_its_report_says_so(live):
    playout, sink, stream = live
    written = await start_holding(playout, stream, time.monotonic())
    reports = playout.interrupt()
    assert playout.held_samples == 0
    await asyncio.sleep(0.08)
    assert len(sink.samples()) == (written - 1) * FRAME  # nothing more after the barge-in
    [report] = reports
    assert report.interrupted and report.sent == (written - 1) * FRAME
    assert report.dropped == FRAME  # the held frame, cut


async def test_close_sends_a_held_frame_and_reports_it_sent(live):
    playout, sink, stream = live
    written = await start_holding(playout, stream, time.monotonic())
    stream.close()
    report = await asyncio.wait_for(stream.utterance, 1)
    assert (report.sent, report.dropped, report.interrupted) == (written * FRAME, 0, False)
    assert np.array_equal(sink.samples(), np.concatenate([frame_of(i) for i in range(written)]))


async def test_the_wait_for_the_next_frame_is_not_counted_as_added_latency():
    """The echo's probe times a pair from the read of the frame that completed it, and a
    frame the timer sent alone from its read less its wait: never the wait itself."""
    playout = playout_of(prebuffer_ms=60)
    probe = LatencyProbe(playout, LATENCY_BUCKETS_S, 64, time.monotonic)
    chunks: list[int] = []

    def write(data: bytes, limit: int) -> int:
        chunks.append(len(data) // 2)
        return 0

    sender = SpeechSender(write, 1 << 20, lambda code: None, probe)
    ready = asyncio.Event()
    ready.set()
    task = asyncio.create_task(playout.run(lambda: sender, ready))
    await asyncio.sleep(0)
    stream = await playout.open_stream()

    def arrive(frame: np.ndarray) -> None:
        probe.arrived((playout_in[0] + FRAME, time.monotonic()))
        playout_in[0] += FRAME
        stream.write(frame)
        probe.written()

    playout_in = [0]
    await at_real_time(30, arrive, time.monotonic())
    await asyncio.sleep(0.005)
    stream.close()  # a frame held last goes now, its wait not counted either
    probe.written()
    task.cancel()
    assert chunks.count(2 * FRAME) >= 10  # pairs went, each first frame held ~20 ms
    assert sum(chunks) == 30 * FRAME and probe.count == len(chunks)  # each message timed
    assert probe.sum > 0  # no message timed as sent before its last sample came
    assert probe.sum / probe.count < 0.003  # not the ~10 ms a held frame waits on average


async def test_a_loops_playouts_share_one_sweep_that_lets_each_late_frame_go():
    """Forty live streams on one loop, each holding a frame at once: one sweep (one timer)
    sends each alone in time when no next frame comes, and is empty after."""
    playouts = [playout_of(prebuffer_ms=60) for _ in range(40)]
    sinks = [Sink(p) for p in playouts]
    tasks = [
        asyncio.create_task(p.run(lambda s=s: s.send, s.ready))
        for p, s in zip(playouts, sinks, strict=True)
    ]
    await asyncio.sleep(0)
    streams = [await p.open_stream() for p in playouts]
    start = time.monotonic()
    for i in range(4):  # the prebuffer, then a frame each can hold
        await asyncio.sleep(max(0.0, start + i * 0.02 - time.monotonic()))
        for stream in streams:
            stream.write(frame_of(i))
    sweep = playouts[0]._sweep
    assert all(p._sweep is sweep for p in playouts)
    assert sweep.holding == sum(1 for p in playouts if p.held_samples) >= 30
    await asyncio.sleep(0.06)  # no next frame: each goes alone with lead to spare
    assert sweep.holding == 0
    for playout, sink in zip(playouts, sinks, strict=True):
        assert np.array_equal(sink.samples(), np.concatenate([frame_of(i) for i in range(4)]))
        assert playout.pacer.underruns == 0 and min(sink.lead_before[1:]) > 0
    for task in tasks:
        task.cancel()


async def test_a_playouts_sweep_cannot_change_while_it_holds_a_frame(live):
    playout, _, stream = live
    await start_holding(playout, stream, time.monotonic())
    with pytest.raises(RuntimeError, match="frames are held"):
        playout._sweep = None
    with pytest.raises(TypeError, match="HoldSweep"):
        playout._sweep = object()
    with pytest.raises(ValueError, match="positive"):
        HoldSweep(0)
    stream.close()  # the held frame goes to the queue, and out
    assert playout.held_samples == 0 and playout._sweep.holding == 0


class Probed:
    """A playout whose sends go through a SpeechSender and a latency probe, as an echo's."""

    def __init__(self) -> None:
        self.playout = playout_of(prebuffer_ms=60)
        self.probe = LatencyProbe(self.playout, LATENCY_BUCKETS_S, 64, time.monotonic)
        self.chunks: list[int] = []
        self.heard = 0
        self.sender = SpeechSender(self.write, 1 << 20, lambda code: None, self.probe)

    def write(self, data: bytes, limit: int) -> int:
        self.chunks.append(len(data) // 2)
        return 0

    def arrive(self, stream, frame: np.ndarray) -> None:
        self.heard += len(frame)
        self.probe.arrived((self.heard, time.monotonic()))
        stream.write(frame)
        self.probe.written()

    def observed_since(self, count: int, total: float) -> tuple[int, float]:
        self.probe.written()
        return self.probe.count - count, self.probe.sum - total


async def probed_stream(probed: Probed):
    ready = asyncio.Event()
    ready.set()
    task = asyncio.create_task(probed.playout.run(lambda: probed.sender, ready))
    await asyncio.sleep(0)
    return task, await probed.playout.open_stream()


async def hold_one(probed: Probed, stream) -> None:
    start = time.monotonic()
    for i in range(20):
        await asyncio.sleep(max(0.0, start + i * 0.02 - time.monotonic()))
        probed.arrive(stream, frame_of(i))
        if probed.playout.held_samples:
            return
    raise AssertionError("no frame was held")


async def test_a_frame_a_close_sends_alone_is_timed_from_its_read_less_its_wait():
    probed = Probed()
    task, stream = await probed_stream(probed)
    await hold_one(probed, stream)
    count, total = probed.probe.count, probed.probe.sum
    await asyncio.sleep(0.012)  # it waits; then the stream ends, and it goes alone
    stream.close()
    n, added = probed.observed_since(count, total)
    assert n == 1 and 0 <= added < 0.003  # not the 12 ms it waited
    task.cancel()


async def test_a_held_frame_queued_by_a_pause_lends_its_wait_to_no_other_message():
    """After pause and resume the bot is dry: the held frame goes in the prebuffer's
    message, timed from the read of its last frame (no wait of its own to take off)."""
    probed = Probed()
    task, stream = await probed_stream(probed)
    await hold_one(probed, stream)
    probed.playout.pause()
    await asyncio.sleep(0.1)
    probed.playout.resume()
    count, total = probed.probe.count, probed.probe.sum
    base = probed.heard // FRAME
    for i in range(2):  # with the held one, the 60 ms prebuffer: one message
        probed.arrive(stream, frame_of(base + i))
    n, added = probed.observed_since(count, total)
    assert n == 1 and probed.chunks[-1] == 3 * FRAME
    assert 0 <= added < 0.003  # never negative: the held frame's wait is not taken off it
    stream.close()
    task.cancel()


async def test_a_sweep_that_cannot_rearm_lets_every_held_frame_go_not_strands_them(
    live, monkeypatch
):
    playout, sink, stream = live
    reported = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)
    written = await start_holding(playout, stream, time.monotonic())
    del playout._call_later  # the sweep's next timer has no loop to ask
    await asyncio.sleep(0.05)
    assert [str(r.exc_value) for r in reported] == [
        "a hold sweep needs a loop's call_later and an interval"
    ]  # said once, not every 5 ms
    assert playout.held_samples == 0 and playout._sweep.holding == 0
    assert np.array_equal(sink.samples(), np.concatenate([frame_of(i) for i in range(written)]))
