"""The loopback latency probe and the speech sender (bridge/server/_playout.c), exactly."""

import random

import pytest

from bridge.server._playout import LatencyProbe, SpeechSender
from bridge.server.histogram import LATENCY_BUCKETS_S, Histogram
from bridge.server.playout import Playout

RATE = 24000
FRAME = 480


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def probe_of(kept: int = 8) -> tuple[LatencyProbe, Playout, Clock]:
    playout = Playout(RATE, 20, lead_ms=80, capacity_s=1, max_pending=4)
    clock = Clock()
    return LatencyProbe(playout, LATENCY_BUCKETS_S, kept, clock), playout, clock


def test_each_message_is_timed_from_the_read_of_the_chunk_its_first_sample_came_in():
    probe, playout, clock = probe_of()
    probe.arrived((FRAME, 100.000))  # input samples 0..479, read at 100.000
    probe.arrived((2 * FRAME, 100.020))  # 480..959
    playout.allowed_at = 0.0  # the pacer held nothing
    probe.sent(FRAME)  # output 0..479 is input 0..479: its first sample came at 100.000
    playout.samples_out = FRAME
    probe.sent(FRAME)  # output 480..959
    clock.now = 100.023
    probe.written()
    assert probe.count == 2
    assert probe.sum == pytest.approx(0.023 + 0.003)
    probe.written()  # nothing new written: nothing observed twice
    assert probe.count == 2


def test_what_the_pacer_held_on_purpose_is_not_counted_and_drops_shift_the_input():
    probe, playout, clock = probe_of()
    probe.arrived((FRAME, 100.000))
    probe.arrived((2 * FRAME, 100.020))
    playout.allowed_at = 100.015  # the lead was full: the pacer let it go only then
    probe.sent(FRAME)
    clock.now = 100.016
    probe.written()
    assert probe.sum == pytest.approx(0.001)
    probe.dropped = FRAME  # the loopback dropped input 0..479: output 0.. is input 480..
    playout.samples_out, playout.allowed_at = 0, 0.0
    probe.sent(FRAME)
    clock.now = 100.030
    probe.written()
    assert probe.count == 2 and probe.sum == pytest.approx(0.001 + 0.010)


def test_a_lost_write_times_nothing_and_clear_forgets_the_stream():
    probe, _playout, _clock = probe_of()
    probe.arrived((FRAME, 100.0))
    probe.sent(FRAME)
    probe.lost()
    probe.written()
    assert probe.count == 0
    probe.dropped = 5
    probe.clear()
    assert probe.dropped == 0
    probe.sent(FRAME)  # no arrival left to time it from
    probe.written()
    assert probe.count == 0


def test_the_rings_keep_their_bound_and_forget_the_oldest():
    probe, _playout, clock = probe_of(kept=4)
    for i in range(10):
        probe.arrived(((i + 1) * FRAME, 100.0 + i))  # only the last 4 kept: from 106.0
    probe.sent(FRAME)  # input 0..479 was forgotten: timed from the oldest kept
    clock.now = 110.0
    probe.written()
    assert probe.sum == pytest.approx(4.0)
    for _ in range(10):
        probe.arrived((100 * FRAME, 110.0))
        probe.sent(FRAME)  # ten messages awaiting one write: the last 4 are timed
    clock.now = 110.001
    probe.written()
    assert probe.count == 1 + 4


def test_its_buckets_are_the_python_histograms_for_the_same_values():
    probe, playout, clock = probe_of(kept=1)
    reference = Histogram(LATENCY_BUCKETS_S)
    rng = random.Random(7)
    values = [*LATENCY_BUCKETS_S, 0.0, 1.0, *(rng.uniform(0, 0.3) for _ in range(2000))]
    for i, value in enumerate(values):
        probe.arrived(((i + 1) * FRAME, 1000.0 - value))
        playout.samples_out = i * FRAME
        probe.sent(FRAME)
        clock.now = 1000.0
        probe.written()
        reference.observe(clock.now - (1000.0 - value))
    assert probe.counts == reference.counts
    assert probe.count == reference.count and probe.sum == pytest.approx(reference.sum)


def test_a_probe_times_a_playouts_sends_and_nothing_else():
    with pytest.raises(TypeError):
        LatencyProbe(object(), LATENCY_BUCKETS_S, 8, Clock())
    with pytest.raises(ValueError, match="kept"):
        LatencyProbe(probe_of()[1], LATENCY_BUCKETS_S, 0, Clock())


def test_the_sender_writes_times_what_was_queued_and_hands_on_what_was_refused():
    probe, _playout, clock = probe_of()
    written: list[tuple[bytes, int]] = []
    codes = iter([0, 1, 2])
    refused: list[int] = []

    def send_speech(data: bytes, limit: int) -> int:
        written.append((data, limit))
        return next(codes)

    send = SpeechSender(send_speech, 4096, refused.append, probe)
    probe.arrived((FRAME, 100.0))
    for _ in range(3):
        send(bytes(2 * FRAME))
    assert [limit for _, limit in written] == [4096] * 3
    assert refused == [1, 2]
    clock.now = 100.01
    probe.written()
    assert probe.count == 1  # the queued one; the refused ones were never written
    with pytest.raises(TypeError, match="one argument"):
        send()
    with pytest.raises(TypeError, match="LatencyProbe"):
        SpeechSender(send_speech, 4096, refused.append, object())
    plain = SpeechSender(lambda data, limit: 0, 1, refused.append, None)
    assert plain(b"\0\0") is None


def test_an_error_in_the_write_reaches_the_caller():
    def broken(data: bytes, limit: int) -> int:
        raise OSError("gone")

    send = SpeechSender(broken, 1, print, None)
    with pytest.raises(OSError, match="gone"):
        send(b"\0\0")
