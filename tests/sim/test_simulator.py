import asyncio
import time

import numpy as np
import pytest

from bridge.sim.simulator import (
    LoopStalls,
    PlayerModel,
    SimulationReport,
    Utterance,
    _measure,
    best_alignment,
    with_rate,
)
from tests.sounds import recording


def frame(ms: int, rate: int = 24000, value: int = 1) -> bytes:
    return np.full(rate * ms // 1000, value, dtype=np.int16).tobytes()


def test_player_plays_back_to_back_and_measures_lead():
    player = PlayerModel(24000, origin=0.0)
    player.receive(1.000, frame(20))
    player.receive(1.000, frame(20))
    player.receive(1.020, frame(20))
    assert player.leads == pytest.approx([0.020, 0.040, 0.040])
    assert player.underruns == 0 and player.pauses == 0
    heard = player.timeline(0)
    assert np.count_nonzero(heard) == 1440 and heard[24000] == 1  # starts at t = 1 s


def test_short_gap_is_an_underrun_long_gap_a_pause():
    player = PlayerModel(24000, origin=0.0, pause_ms=300)
    player.receive(0.0, frame(20))
    player.receive(0.050, frame(20))  # 30 ms after the first ended: the player ran dry
    player.receive(1.0, frame(20))  # almost a second later: a pause between utterances
    assert player.underruns == 1 and player.pauses == 1


def test_odd_messages_are_dropped_like_the_real_bot():
    player = PlayerModel(24000, origin=0.0)
    player.receive(0.0, b"\x00\x01\x02")
    assert player.odd_messages == 1 and not player.chunks


def test_best_alignment_finds_the_delay():
    speech = recording("Front_Left", 16000)
    haystack = np.concatenate(
        [np.zeros(12345, dtype=np.int16), speech, np.zeros(500, dtype=np.int16)]
    )
    lag, corr = best_alignment(speech, haystack)
    assert lag == 12345 and corr == pytest.approx(1.0)
    _, corr = best_alignment(speech, np.zeros(len(speech) * 2, dtype=np.int16))
    assert corr == 0.0


def test_with_rate():
    assert with_rate("ws://h/bots/x", 16000) == "ws://h/bots/x?rate=16000"
    assert with_rate("ws://h/bots/x?token=t", 24000) == "ws://h/bots/x?token=t&rate=24000"
    assert with_rate("ws://h/bots/x?rate=16000", 24000) == "ws://h/bots/x?rate=16000"


def test_an_echo_shorter_than_its_recording_aligns_at_the_end_of_the_timeline():
    speech = recording("Front_Left", 24000)
    echo = speech[:-4800]  # the VAD trimmed 200 ms of tail
    player = PlayerModel(24000, origin=0.0)
    for at in range(0, len(echo), 480):  # 20 ms frames, from t = 1 s, at real time
        player.receive(1.0 + at / 24000, echo[at : at + 480].tobytes())
    report = SimulationReport(24000, utterances=[Utterance("Front_Left", 0, speech)])
    _measure(report, player, LoopStalls(), np.zeros(24000 + len(echo), dtype=np.int16))
    (utterance,) = report.utterances
    assert utterance.echo_delay_ms == pytest.approx(1000.0)
    assert utterance.echo_correlation is not None and utterance.echo_correlation > 0.9


def test_a_late_check_is_a_stall_from_when_it_was_due():
    stalls = LoopStalls(tick_s=0.005, threshold_s=0.015)
    for now in (0.0, 0.005, 0.011, 0.030):  # 19 ms apart at the last: 14 ms late, within bounds
        stalls.beat(now)
    assert stalls.intervals == []
    stalls.beat(0.060)  # due at 0.035: 25 ms late
    assert stalls.intervals == [pytest.approx((0.035, 0.060))]


def test_a_gap_is_explained_by_a_stall_over_it_or_shortly_before_it():
    stalls = LoopStalls()
    stalls.intervals = [(1.000, 1.050)]
    assert stalls.explain((1.040, 1.070))  # the simulator read the message late
    assert stalls.explain((1.120, 1.140))  # it sent a chunk late; its echo came late
    assert not stalls.explain((1.200, 1.220))  # long after: the bridge's gap
    assert not stalls.explain((0.900, 0.990))  # before it


def test_gaps_in_the_simulators_own_stalls_are_not_the_bridges_underruns():
    player = PlayerModel(24000, origin=0.0)
    for now in (1.0, 1.050, 2.0, 2.050):  # two 30 ms gaps, one in a stall of the simulator
        player.receive(now, frame(20))
    stalls = LoopStalls()
    stalls.intervals = [(1.015, 1.045)]
    report = SimulationReport(24000)
    _measure(report, player, stalls, np.zeros(24000, dtype=np.int16))
    assert player.underruns == 2
    assert report.underruns == 1 and report.gaps_in_own_stalls == 1
    assert "gaps while the simulator itself was stalled: 1" in str(report)


async def test_a_blocked_loop_is_seen_as_a_stall():
    stalls = LoopStalls()
    watcher = asyncio.create_task(stalls.watch())
    await asyncio.sleep(0.02)
    blocked_at = time.monotonic()
    time.sleep(0.05)  # holds the loop, as a descheduled process would be held
    await asyncio.sleep(0.02)
    watcher.cancel()
    ((due, seen),) = stalls.intervals
    assert due <= blocked_at + stalls.tick_s and seen - due > 0.04
