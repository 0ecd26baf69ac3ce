import numpy as np
import pytest

from bridge.simulator import (
    PlayerModel,
    SimulationReport,
    Utterance,
    _measure,
    best_alignment,
    with_rate,
)
from tests.audio import recording


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
    _measure(report, player, np.zeros(24000 + len(echo), dtype=np.int16))
    (utterance,) = report.utterances
    assert utterance.echo_delay_ms == pytest.approx(1000.0)
    assert utterance.echo_correlation is not None and utterance.echo_correlation > 0.9
