import numpy as np
import pytest

from bridge.audio.pacer import EARLY_S, OutputPacer

RATE, FRAME = 24000, 480  # 20 ms frames


def run(pacer: OutputPacer, until: float, jitter_s: float, seed: int = 0, start: float = 100.0):
    """A virtual event loop: wake when the pacer says, late by up to jitter, send a frame."""
    rng = np.random.default_rng(seed)
    now, leads, sends = start, [], []
    while now < start + until:
        due = pacer.send_at(now, FRAME)
        if due > now:
            now = due + rng.uniform(0, jitter_s)
            continue
        pacer.sent(now, FRAME)
        leads.append(pacer.lead_at(now))
        sends.append(now)
    return now, leads, sends


def test_holds_real_time_within_a_millisecond_over_a_minute():
    pacer = OutputPacer(RATE, lead_ms=40)
    now, leads, sends = run(pacer, until=60.0, jitter_s=0.005)
    played = pacer.samples_sent / RATE
    elapsed = now - sends[0]
    # audio sent = wall time elapsed + the lead, to within a millisecond after a minute
    assert abs(played - elapsed - pacer.lead_at(now)) < 0.001
    assert pacer.play_end - sends[0] == pytest.approx(played, abs=1e-9)  # integer clock, no drift
    assert pacer.underruns == 0
    assert max(leads) <= 0.040 + EARLY_S


def test_never_exceeds_its_lead():
    for lead_ms in (20, 30, 40, 80):
        pacer = OutputPacer(RATE, lead_ms=lead_ms)
        _, leads, _ = run(pacer, until=10.0, jitter_s=0.003, seed=lead_ms)
        assert max(leads) <= lead_ms / 1000 + EARLY_S


def test_first_frames_go_at_once_up_to_the_lead():
    pacer = OutputPacer(RATE, lead_ms=40)
    assert pacer.send_at(5.0, FRAME) == 5.0
    pacer.sent(5.0, FRAME)
    assert pacer.send_at(5.0, FRAME) == 5.0  # 20 ms queued: one more fits in 40 ms
    pacer.sent(5.0, FRAME)
    assert pacer.send_at(5.0, FRAME) == pytest.approx(5.02)  # the third waits a frame


def test_a_frame_due_within_early_s_goes_now_one_due_later_waits():
    pacer = OutputPacer(RATE, lead_ms=40)
    pacer.sent(5.0, FRAME)
    pacer.sent(5.0, FRAME)  # 40 ms sent: the next is due when 20 ms have played
    early = 5.02 - EARLY_S
    assert pacer.send_at(early + 0.0005, FRAME) == early + 0.0005  # at once: the lead 44.5 ms
    assert pacer.send_at(early - 0.0005, FRAME) == pytest.approx(5.02)  # a little more: waits


def test_a_stall_is_an_underrun_and_is_not_repaid_in_a_burst():
    pacer = OutputPacer(RATE, lead_ms=40)
    now, _, _ = run(pacer, until=1.0, jitter_s=0.0)
    stalled = now + 0.25  # the loop was blocked for 250 ms
    sent = 0
    while pacer.send_at(stalled, FRAME) <= stalled:
        pacer.sent(stalled, FRAME)
        sent += 1
    assert pacer.underruns == 1
    assert sent == 2  # only the lead's worth, not the 250 ms missed
    assert pacer.lead_at(stalled) == pytest.approx(0.040)


def test_silence_after_the_end_of_a_stream_is_not_an_underrun():
    pacer = OutputPacer(RATE, lead_ms=40)
    now, _, _ = run(pacer, until=0.5, jitter_s=0.0)
    pacer.end_stream()
    pacer.sent(now + 3.0, FRAME)
    assert pacer.underruns == 0
    assert pacer.lead_at(now + 3.0) == pytest.approx(0.020)


def test_lead_must_be_positive():
    with pytest.raises(ValueError):
        OutputPacer(RATE, lead_ms=0)


def test_a_pause_returns_the_lead_that_plays_on_and_its_gap_is_no_underrun():
    pacer = OutputPacer(RATE, lead_ms=40)
    now, _, _ = run(pacer, until=0.5, jitter_s=0.0)
    assert pacer.pause(now) == pytest.approx(pacer.play_end - now)
    assert 0.020 <= pacer.pause(now) <= 0.040 + EARLY_S
    pacer.sent(now + 0.7, FRAME)  # resumed 700 ms later
    assert pacer.underruns == 0 and pacer.pauses == 2
    assert pacer.lead_at(now + 0.7) == pytest.approx(0.020)


def test_frames_due_together_fill_the_lead_and_those_due_within_half_a_frame_join_them():
    pacer = OutputPacer(RATE, lead_ms=80)  # FRAME is 20 ms
    assert pacer.frames_due(10.0, FRAME) == 4  # dry: the whole lead at once
    pacer.sent(10.0, 5 * FRAME)  # 100 ms playing until 10.1
    assert pacer.send_at(10.045, FRAME) == 10.045  # 55 ms left: a frame fits
    assert pacer.frames_due(10.045, FRAME) == 1  # the second would be 15 ms early
    # a 100 ms chunk 6 ms before the last one has played: the fourth frame is 6 ms early
    assert pacer.frames_due(10.094, FRAME) == 4
    assert pacer.frames_due(10.085, FRAME) == 3  # 15 ms early: it waits for its time
    assert pacer.allowed_at(FRAME) == pytest.approx(10.1 + 0.02 - 0.08)


def test_a_pacer_that_knows_its_frame_sends_a_frame_due_within_half_of_it():
    pacer = OutputPacer(RATE, lead_ms=40, frame=FRAME)  # FRAME is 20 ms: 10 ms of slack
    pacer.sent(5.0, FRAME)
    pacer.sent(5.0, FRAME)  # the next is due at 5.02
    assert pacer.send_at(5.0105, FRAME) == 5.0105  # 9.5 ms early: at once, the lead 49.5 ms
    assert pacer.send_at(5.0095, FRAME) == pytest.approx(5.02)  # 10.5 ms early: waits
    _, leads, _ = run(OutputPacer(RATE, lead_ms=40, frame=FRAME), until=10.0, jitter_s=0.008)
    assert max(leads) <= 0.040 + 0.010


class ReferencePacer:
    """The pacer's arithmetic in Python, as it was before it was compiled: the C must agree
    with it to the last bit."""

    def __init__(self, rate: int, lead_ms: float, frame: int) -> None:
        self.rate, self.lead = rate, lead_ms / 1000
        self.slack = max(EARLY_S, frame / rate / 2)
        self.origin, self.samples, self.play_end = 0.0, 0, 0.0
        self.streaming, self.underruns, self.pauses, self.samples_sent = False, 0, 0, 0

    def lead_at(self, now: float) -> float:
        return max(0.0, self.play_end - now)

    def send_at(self, now: float, samples: int) -> float:
        due = max(self.play_end, now) + samples / self.rate - self.lead
        return now if due <= now + self.slack else due

    def frames_due(self, now: float, frame: int) -> int:
        slack = max(self.slack, frame / self.rate / 2)
        room = now + slack + self.lead - max(self.play_end, now)
        return max(1, int(room * self.rate) // frame)

    def allowed_at(self, frame: int) -> float:
        return self.play_end + frame / self.rate - self.lead

    def sent(self, now: float, samples: int) -> None:
        if self.play_end < now:
            if self.streaming and self.samples:
                self.underruns += 1
            self.origin, self.samples = now, 0
        self.samples += samples
        self.play_end = self.origin + self.samples / self.rate
        self.samples_sent += samples
        self.streaming = True

    def pause(self, now: float) -> float:
        self.streaming = False
        self.pauses += 1
        return self.lead_at(now)

    def end_stream(self) -> None:
        self.streaming = False


@pytest.mark.parametrize("seed", range(20))
def test_the_compiled_clock_agrees_with_the_python_arithmetic_exactly(seed):
    rng = np.random.default_rng(seed)
    rate = int(rng.choice([16000, 24000, 32000, 48000]))
    frame, lead_ms = rate // 50, float(rng.choice([20, 40, 80, 120, 250]))
    pacer, reference = OutputPacer(rate, lead_ms, frame), ReferencePacer(rate, lead_ms, frame)
    now = float(rng.uniform(0, 1e5))
    for _ in range(2000):
        now += float(rng.exponential(0.01 if rng.random() < 0.95 else 0.5))  # and gaps
        samples = int(rng.integers(1, 6)) * frame
        op = rng.integers(10)
        if op < 6:
            due = pacer.send_at(now, samples)
            assert due == reference.send_at(now, samples)
            assert pacer.frames_due(now, frame) == reference.frames_due(now, frame)
            if due == now:
                pacer.sent(now, samples)
                reference.sent(now, samples)
        elif op == 6:
            assert pacer.pause(now) == reference.pause(now)
        elif op == 7:
            pacer.end_stream()
            reference.end_stream()
        else:
            assert pacer.allowed_at(frame) == reference.allowed_at(frame)
            assert pacer.lead_at(now) == reference.lead_at(now)
        assert pacer.play_end == reference.play_end
        assert (pacer.underruns, pacer.pauses) == (reference.underruns, reference.pauses)
    assert pacer.samples_sent == reference.samples_sent
    assert reference.underruns > 0 and reference.pauses > 0  # every path was taken
