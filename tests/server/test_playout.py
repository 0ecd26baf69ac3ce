"""Playout with speech streams: order, interrupt and bounds, paced out on the real clock."""

import asyncio
import time

import numpy as np
import pytest

from bridge.server.playout import Playout

RATE = 24000
FRAME = 480  # 20 ms


def constant(value: int, seconds: float) -> np.ndarray:
    return np.full(int(RATE * seconds), value, dtype=np.int16)


class Sink:
    """Collects what the playout sends, as the bot would receive it."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.sent_at: list[float] = []
        self.chunks: list[np.ndarray] = []
        self.ready = asyncio.Event()
        self.ready.set()

    def send(self, data: bytes) -> None:
        self.received += data
        self.chunks.append(np.frombuffer(data, dtype=np.int16))
        self.sent_at.append(time.monotonic())

    def samples(self) -> np.ndarray:
        return np.frombuffer(bytes(self.received), dtype=np.int16)


@pytest.fixture
async def playing():
    playout = Playout(RATE, 20, lead_ms=40, capacity_s=0.2, max_pending=4)
    sink = Sink()
    task = asyncio.create_task(playout.run(lambda: sink.send, sink.ready))
    yield playout, sink
    task.cancel()


async def test_a_stream_plays_after_earlier_speech_and_holds_later_speech(playing):
    playout, sink = playing
    before = playout.speak(constant(1, 0.1))
    stream = await playout.open_stream()  # waits for `before` to be queued
    after = playout.speak(constant(3, 0.1))
    for _ in range(5):
        assert stream.write(constant(2, 0.02)) == 0
        await asyncio.sleep(0.02)
    assert not after.report.done()  # later speech waits for the stream to close
    stream.close()
    reports = await asyncio.wait_for(asyncio.gather(before, stream.utterance, after), 2)
    assert [r.sent for r in reports] == [2400, 2400, 2400]
    assert not any(r.interrupted for r in reports)
    heard = sink.samples()
    assert heard.tolist() == [1] * 2400 + [2] * 2400 + [3] * 2400


async def test_interrupt_ends_a_stream_and_lets_later_speech_in(playing):
    playout, sink = playing
    stream = await playout.open_stream()
    assert stream.write(constant(2, 0.1)) == 0
    reports = playout.interrupt()
    assert stream.closed and [r.interrupted for r in reports] == [True]
    assert (await stream.utterance).interrupted
    assert stream.write(constant(2, 0.02)) == FRAME  # an ended stream queues nothing
    after = await asyncio.wait_for(playout.speak(constant(3, 0.04)), 2)
    assert after.sent == 960 and not after.interrupted
    assert sink.samples()[-960:].tolist() == [3] * 960


async def test_a_stream_write_beyond_the_playback_queue_returns_what_was_dropped(playing):
    playout, _ = playing
    stream = await playout.open_stream()
    capacity = int(RATE * 0.2)
    assert stream.write(constant(2, 0.3)) == int(RATE * 0.3) - capacity
    stream.close()
    report = await asyncio.wait_for(stream.utterance, 2)
    assert report.sent == capacity


async def test_a_stream_at_another_rate_is_resampled_to_the_bot_rate(playing):
    playout, sink = playing
    stream = await playout.open_stream(16000)
    tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(1600) / 16000)).astype(np.int16)
    assert stream.write(tone) == 0
    stream.close()
    report = await asyncio.wait_for(stream.utterance, 2)
    assert abs(report.sent - 2400) <= 2  # 0.1 s at 24 kHz
    spectrum = np.abs(np.fft.rfft(sink.samples().astype(float)))
    peak_hz = np.argmax(spectrum) * RATE / len(sink.samples())
    assert abs(peak_hz - 440) < 15


async def test_a_live_stream_that_ran_dry_queues_the_prebuffer_again():
    playout = Playout(RATE, 20, lead_ms=40, capacity_s=0.2, max_pending=4, prebuffer_ms=40)
    sink = Sink()
    task = asyncio.create_task(playout.run(lambda: sink.send, sink.ready))
    stream = await playout.open_stream()
    for _ in range(3):  # frames as a live source writes them, one per 20 ms
        stream.write(constant(1, 0.02))
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.15)  # the source stalls: the bot plays everything and runs dry
    sent = len(sink.received)
    assert sent == 3 * 2 * FRAME
    stream.write(constant(2, 0.02))
    await asyncio.sleep(0.05)
    assert len(sink.received) == sent  # held: one frame would leave no margin for jitter
    stream.write(constant(2, 0.02))
    async with asyncio.timeout(1):
        while len(sink.received) < sent + 2 * 2 * FRAME:
            await asyncio.sleep(0.005)
    # both went at once, in one message: the bot holds the whole 40 ms again, not one frame
    assert len(sink.chunks[-1]) == 2 * FRAME
    assert playout.pacer.play_end - sink.sent_at[-1] == pytest.approx(0.04, abs=0.002)
    stream.close()
    task.cancel()


async def test_a_frame_due_at_once_leaves_from_write_and_a_later_one_from_a_timer(playing):
    playout, sink = playing
    stream = await playout.open_stream()
    await asyncio.sleep(0)  # run() is idle, waiting for audio
    stream.write(constant(1, 0.02))
    assert len(sink.received) == 2 * FRAME  # sent before write() returned: no task switch
    stream.write(constant(2, 0.02))
    assert len(sink.received) == 2 * 2 * FRAME  # the bot now holds the whole 40 ms lead
    stream.write(constant(3, 0.02))
    assert len(sink.received) == 2 * 2 * FRAME  # not due for 20 ms: a timer sends it then
    async with asyncio.timeout(1):
        while len(sink.received) < 3 * 2 * FRAME:
            await asyncio.sleep(0.002)
    assert sink.sent_at[2] - sink.sent_at[1] >= 0.0195  # not before its deadline
    assert sink.samples().tolist() == [1] * FRAME + [2] * FRAME + [3] * FRAME
    stream.close()


async def test_frames_due_together_leave_in_one_message_of_at_most_message_ms():
    playout = Playout(RATE, 20, lead_ms=100, capacity_s=1, max_pending=4, message_ms=60)
    sink = Sink()
    task = asyncio.create_task(playout.run(lambda: sink.send, sink.ready))
    await asyncio.sleep(0)
    stream = await playout.open_stream()
    stream.write(ramp(0.1))  # a 100 ms chunk, as a v2 bot's echo: the 100 ms lead allows all
    assert [len(b) for b in sink.chunks] == [3 * FRAME, 2 * FRAME]  # 60 ms, then the rest
    stream.write(ramp(0.03))  # 30 ms with the lead full: one frame comes due in 20 ms
    async with asyncio.timeout(1):
        while len(sink.sent_at) < 3:
            await asyncio.sleep(0.002)
    assert len(sink.chunks[2]) == FRAME  # whole frames only, while it is produced
    stream.close()  # the rest of the utterance (10 ms) may go as it is
    async with asyncio.timeout(1):
        while len(sink.received) < 2 * RATE * 0.13:
            await asyncio.sleep(0.002)
    assert np.array_equal(sink.samples(), np.concatenate([ramp(0.1), ramp(0.03)]))
    task.cancel()


async def test_a_long_recording_is_resampled_a_slice_at_a_time(playing, monkeypatch):
    """10 minutes at 8 kHz: resampled whole, it held the loop as long as that took; now
    each step between awaits resamples at most RESAMPLE_CHUNK_S of it."""
    from bridge.audio.resample import StreamResampler
    from bridge.server.playout import RESAMPLE_CHUNK_S

    playout, sink = playing
    sizes: list[int] = []
    process = StreamResampler.process

    def measured(self, chunk):
        sizes.append(len(chunk))
        return process(self, chunk)

    monkeypatch.setattr(StreamResampler, "process", measured)
    recording = np.tile(np.arange(-400, 400, dtype=np.int16), 8000 * 600 // 800)
    playout.speak(recording, 8000)
    await asyncio.sleep(0.3)
    assert len(sink.samples()) > 0  # it plays meanwhile
    assert max(sizes) <= 8000 * RESAMPLE_CHUNK_S
    assert sum(sizes) < 8000 * 1.5  # no further ahead than the queue's room lets it
    playout.interrupt()


def ramp(seconds: float) -> np.ndarray:
    """Every sample different: what was sent twice or skipped shows."""
    return (np.arange(int(RATE * seconds)) % 30000).astype(np.int16)


async def sent_at_least(sink: Sink, samples: int) -> None:
    async with asyncio.timeout(5):
        while len(sink.received) < 2 * samples:
            await asyncio.sleep(0.005)


async def test_pause_stops_sending_and_resume_goes_on_exactly_where_it_stopped(playing):
    playout, sink = playing
    speech = ramp(0.5)
    utterance = playout.speak(speech)
    await sent_at_least(sink, RATE // 5)
    lead = playout.pause()
    paused_at = len(sink.received)
    assert 0 <= lead <= 0.040 + 0.005  # at most the lead plays on at the bot
    await asyncio.sleep(0.2)
    assert len(sink.received) == paused_at and playout.paused and playout.speaking
    playout.resume()
    report = await asyncio.wait_for(utterance, 3)
    assert not report.interrupted and report.sent == len(speech) and report.dropped == 0
    assert np.array_equal(sink.samples(), speech)  # nothing skipped, nothing repeated
    assert playout.pacer.underruns == 0


async def test_interrupt_while_paused_reports_what_the_meeting_heard(playing):
    playout, sink = playing
    speech = ramp(0.15)  # fits the queue: all of it is queued, what was not sent is dropped
    utterance = playout.speak(speech)
    await sent_at_least(sink, 2 * FRAME)
    playout.pause()
    heard = len(sink.received) // 2
    reports = playout.interrupt()
    assert not playout.paused
    report = await utterance
    assert reports == [report]
    assert report.interrupted and report.sent == heard and report.dropped == len(speech) - heard
    assert np.array_equal(sink.samples(), speech[:heard])


async def test_speech_spoken_while_paused_waits_and_follows_in_order(playing):
    playout, sink = playing
    first = playout.speak(constant(1, 0.1))
    await sent_at_least(sink, FRAME)
    playout.pause()
    before = len(sink.received) // 2
    second = playout.speak(constant(2, 0.1))
    await asyncio.sleep(0.15)
    assert len(sink.received) // 2 == before and not second.report.done()
    playout.resume()
    reports = await asyncio.wait_for(asyncio.gather(first, second), 3)
    assert [r.sent for r in reports] == [2400, 2400]
    assert sink.samples().tolist() == [1] * 2400 + [2] * 2400


def test_the_lead_grows_to_an_input_chunk_and_a_frame_and_a_rate_change_resets_it():
    playout = Playout(RATE, 20, lead_ms=80, capacity_s=1, max_pending=4, message_ms=100)
    playout.fit_chunk(RATE // 100)  # 10 ms chunks: the configured lead stands
    assert playout.pacer.lead == pytest.approx(0.08)
    assert playout.pacer.slack == pytest.approx(0.01)  # half a frame
    playout.fit_chunk(RATE // 10)  # a v2 bot's 100 ms, and a frame for its jitter
    assert playout.pacer.lead == pytest.approx(0.12)
    assert playout.pacer.slack == pytest.approx(0.05)  # half a chunk
    playout.fit_chunk(RATE // 10 + 1, loopback=True)  # a loopback's: a whole chunk
    assert playout.pacer.slack == pytest.approx(0.1, abs=1e-4)
    playout.fit_chunk(RATE)  # a 1 s message: no more than a message's worth
    assert playout.pacer.lead == pytest.approx(0.12)
    playout.retune(16000)
    assert (playout.pacer.lead, playout.chunk_samples) == (pytest.approx(0.08), 0)
    assert playout.pacer.slack == pytest.approx(0.01)


@pytest.mark.parametrize(("loopback", "messages"), [(True, [5, 5]), (False, [5, 4])])
async def test_a_loopbacks_chunk_goes_whole_when_its_bots_playback_has_shifted_under_a_chunk(
    loopback, messages
):
    """A v2 bot's 100 ms chunk read 90 ms before the last one's echo has played (a stall
    shifted the bot's playback): a loopback's goes in one message, another stream's goes
    as what the lead holds now, the rest from a timer."""
    now = [100.0]
    playout = Playout(
        RATE, 20, lead_ms=80, capacity_s=1, max_pending=4, clock=lambda: now[0], message_ms=100
    )
    playout.fit_chunk(RATE // 10, loopback)
    sink = Sink()
    task = asyncio.create_task(playout.run(lambda: sink.send, sink.ready))
    await asyncio.sleep(0)
    stream = await playout.open_stream()
    assert stream.write(constant(1, 0.1)) == 0
    now[0] += 0.01
    assert stream.write(constant(2, 0.1)) == 0
    assert [len(c) // FRAME for c in sink.chunks] == messages
    assert playout.pacer.lead_at(now[0]) <= 0.12 + (0.1 if loopback else 0.05) + 1e-9
    stream.close()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_live_streams_chunks_due_at_once_go_as_they_are_and_are_all_accounted():
    """Chunks written while the queue is empty and the lead has room leave in one message
    each, before write() returns; the report counts them, and a chunk the lead has no room
    for is queued and sent later from a timer, as ever."""
    playout = Playout(RATE, 20, lead_ms=100, capacity_s=1, max_pending=4, prebuffer_ms=0)
    sink = Sink()
    task = asyncio.create_task(playout.run(lambda: sink.send, sink.ready))
    await asyncio.sleep(0)
    stream = await playout.open_stream()
    first, second = ramp(0.06), constant(5, 0.04)
    assert stream.write(first) == 0 and stream.write(second) == 0
    assert [len(c) for c in sink.chunks] == [3 * FRAME, 2 * FRAME]  # the lead is now full
    assert playout.queue.available == 0
    third = constant(7, 0.02)
    stream.write(third)  # no room: queued, sent in 20 ms
    assert len(sink.chunks) == 2 and playout.queue.available == FRAME
    async with asyncio.timeout(1):
        while len(sink.chunks) < 3:
            await asyncio.sleep(0.002)
    stream.close()
    report = await asyncio.wait_for(stream.utterance, 1)
    assert (report.sent, report.dropped, report.interrupted) == (6 * FRAME, 0, False)
    assert np.array_equal(sink.samples(), np.concatenate([first, second, third]))
    assert playout.samples_out == 6 * FRAME
    task.cancel()


async def test_delay_is_the_queue_and_the_lead_beyond_what_the_lead_holds(playing):
    playout, sink = playing
    stream = await playout.open_stream()
    await asyncio.sleep(0)
    assert playout.delay() == 0.0  # nothing sent: a frame would go at once
    stream.write(constant(1, 0.04))  # the whole 40 ms lead, sent at once
    assert len(sink.received) == 2 * 2 * FRAME
    stream.write(constant(2, 0.06))  # queued behind it
    # 60 ms queued, plus a frame, beyond the ~40 ms the lead still holds
    assert playout.delay() == pytest.approx(0.06 + 0.02, abs=0.003)
    stream.close()


async def test_strided_and_float_audio_is_queued_and_plays_intact(playing):
    playout, sink = playing
    stream = await playout.open_stream()
    await asyncio.sleep(0)
    strided = np.repeat(np.arange(FRAME, dtype=np.int16), 2)[::2]  # a view, not contiguous
    assert not strided.flags.c_contiguous
    assert stream.write(strided) == 0
    assert stream.write(np.full(FRAME, 0.5, dtype=np.float32)) == 0
    assert stream.write(np.full(FRAME, -7, dtype="<i2").tobytes()) == 0  # s16le bytes
    stream.close()
    report = await asyncio.wait_for(stream.utterance, 2)
    assert report.sent == 3 * FRAME
    heard = sink.samples()
    assert heard[:FRAME].tolist() == list(range(FRAME))
    assert heard[FRAME : 2 * FRAME].tolist() == [16384] * FRAME
    assert heard[2 * FRAME :].tolist() == [-7] * FRAME


async def test_a_failing_send_reaches_the_writer_and_nothing_counts_as_sent():
    playout = Playout(RATE, 20, lead_ms=40, capacity_s=0.2, max_pending=4)

    def broken(data: bytes) -> None:
        raise ConnectionError("the socket is gone")

    ready = asyncio.Event()
    ready.set()
    task = asyncio.create_task(playout.run(lambda: broken, ready))
    stream = await playout.open_stream()
    await asyncio.sleep(0)
    with pytest.raises(ConnectionError, match="the socket is gone"):
        stream.write(constant(1, 0.02))
    assert playout.samples_out == 0 and playout.pacer.samples_sent == 0
    task.cancel()


def test_a_playouts_pacer_must_be_a_pacer():
    playout = Playout(RATE, 20, lead_ms=40, capacity_s=0.2, max_pending=4)
    with pytest.raises(TypeError, match="Pacer"):
        playout.pacer = object()
    assert playout.pacer.sample_rate == RATE


async def test_only_little_endian_s16_passes_through_and_other_two_byte_arrays_are_refused(
    playing,
):
    playout, sink = playing
    stream = await playout.open_stream()
    await asyncio.sleep(0)
    big = np.arange(FRAME, dtype=">i2")  # s16, but big-endian: queued, sent as s16le
    assert playout.put(stream.utterance.id, big) == 0
    await sent_at_least(sink, FRAME)
    assert sink.samples()[:FRAME].tolist() == list(range(FRAME))
    with pytest.raises(TypeError, match="s16"):
        playout._send_message(sink.send, time.monotonic(), np.zeros(FRAME, np.float16))
    stream.close()


def test_a_bare_playout_core_says_what_it_lacks_instead_of_crashing():
    from bridge.server._playout import PlayoutCore

    core = PlayoutCore()
    with pytest.raises(RuntimeError, match="no pacer"):
        core.delay()
    core.frame_size = core._message_samples = FRAME
    core._running = True
    core._sink = lambda: print
    with pytest.raises(RuntimeError, match="no pacer"):
        core.put(1, np.zeros(FRAME, np.int16))
    core.pacer = Playout(RATE, 20, lead_ms=40, capacity_s=0.2, max_pending=4).pacer
    with pytest.raises(RuntimeError, match="no queue"):
        core.put(1, np.zeros(FRAME, np.int16))
