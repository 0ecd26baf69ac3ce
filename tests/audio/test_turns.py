"""Turn policy: endpointing on real speech, adaptive delay, continuation, the fixed policy."""

import numpy as np
import pytest

from bridge.audio.turns import (
    PAUSE_MARGIN,
    PauseModel,
    TurnContinued,
    TurnEnded,
    TurnPolicy,
    TurnStarted,
)
from bridge.audio.vad import VAD_RATE, SpeechStarted, SpeechStopped, VoiceActivityDetector
from tests.sounds import espeak, recording, silence

FRAME = 160  # 20 ms at 8 kHz


def turns(signal: np.ndarray, policy: TurnPolicy, stop_ms: int = 200) -> list:
    """Drive the policy as the session does: VAD events, the last voice as the stop, a tick
    per frame. Returns (heard_at_ms, event) pairs."""
    vad = VoiceActivityDetector(20, stop_ms=stop_ms)
    found = []
    for i in range(0, len(signal) - FRAME + 1, FRAME):
        event = vad.process(signal[i : i + FRAME])
        turn = None
        if isinstance(event, SpeechStarted):
            turn = policy.speech_started(event.at_ms)
        elif isinstance(event, SpeechStopped):
            policy.speech_stopped(max(event.at_ms, vad.last_voiced_ms))
        if turn is None:
            turn = policy.tick(vad.position_ms, vad.onset_pending)
        if turn is not None:
            found.append((vad.position_ms, turn))
    return found


def adaptive() -> TurnPolicy:
    return TurnPolicy(500, 3000, 1000)


def test_front_center_with_its_440_ms_pause_is_one_turn():
    speech = recording("Front_Center", VAD_RATE)
    found = turns(np.concatenate([silence(1, VAD_RATE), speech, silence(3, VAD_RATE)]), adaptive())
    kinds = [type(e) for _, e in found]
    assert kinds == [TurnStarted, TurnEnded]
    (_, started), (decided, ended) = found
    assert 1000 <= started.at_ms <= 1100  # the recording's voice begins at about 1060 ms
    speech_end_ms = 1000 + 1440  # the end of its last voiced frame (a quiet tail follows)
    assert speech_end_ms - 40 <= ended.end_ms <= speech_end_ms
    assert decided == ended.decided_ms == ended.end_ms + 500  # the minimum delay, no more


def test_the_fixed_window_policy_splits_front_center_in_two():
    """What the issue measured on main: the 500 ms stop window ends the turn after "front"."""
    speech = recording("Front_Center", VAD_RATE)
    signal = np.concatenate([silence(1, VAD_RATE), speech, silence(3, VAD_RATE)])
    found = turns(signal, TurnPolicy(0, 0, 0, adaptive=False), stop_ms=500)
    assert [type(e) for _, e in found] == [TurnStarted, TurnEnded] * 2


def test_a_pause_longer_than_the_delay_ends_the_turn_and_resuming_continues_it():
    front = recording("Front_Left", VAD_RATE)
    signal = np.concatenate(
        [silence(1, VAD_RATE), front, silence(0.8, VAD_RATE), front, silence(3, VAD_RATE)]
    )
    policy = adaptive()
    found = turns(signal, policy)
    kinds = [type(e) for _, e in found]
    assert kinds == [TurnStarted, TurnEnded, TurnContinued, TurnEnded]
    first_end, continued, last_end = found[1][1], found[2][1], found[3][1]
    assert continued.start_ms == found[0][1].at_ms == last_end.start_ms  # the same turn
    assert continued.gap_ms == pytest.approx(continued.at_ms - first_end.end_ms)
    assert 800 <= continued.gap_ms <= 1000  # 800 ms of silence and the recording's quiet ends
    # that pause taught the policy: the next endpoint waits it out with a margin
    assert last_end.delay_ms == pytest.approx(PAUSE_MARGIN * continued.gap_ms)


def test_after_a_long_pause_the_same_gap_no_longer_splits_the_turn():
    front = recording("Front_Left", VAD_RATE)
    gap = silence(0.8, VAD_RATE)
    signal = np.concatenate(
        [silence(1, VAD_RATE), front, gap, front, gap, front, gap, front, silence(4, VAD_RATE)]
    )
    found = turns(signal, adaptive())
    kinds = [type(e) for _, e in found]
    assert kinds == [TurnStarted, TurnEnded, TurnContinued, TurnEnded]  # split once, then learnt


def test_resuming_after_the_continue_window_starts_a_new_turn():
    front = recording("Front_Left", VAD_RATE)
    signal = np.concatenate(
        [silence(1, VAD_RATE), front, silence(2.5, VAD_RATE), front, silence(3, VAD_RATE)]
    )
    found = turns(signal, adaptive())
    assert [type(e) for _, e in found] == [TurnStarted, TurnEnded] * 2


@pytest.mark.parametrize(("pause_s", "continued"), [(0.0, False), (0.35, True)])
def test_two_espeak_phrases_are_one_turn(tmp_path, pause_s, continued):
    """espeak ends each phrase with 300 ms of silence: pauses of 340 ms (one turn outright)
    and 690 ms (ended after the minimum delay, then continued)."""
    first = espeak("I think we should move the launch", VAD_RATE, tmp_path)
    second = espeak("to the second week of March", VAD_RATE, tmp_path)
    signal = np.concatenate(
        [silence(1, VAD_RATE), first, silence(pause_s, VAD_RATE), second, silence(3, VAD_RATE)]
    )
    found = turns(signal, adaptive())
    kinds = [type(e) for _, e in found]
    assert kinds == (
        [TurnStarted, TurnEnded, TurnContinued, TurnEnded]
        if continued
        else [TurnStarted, TurnEnded]
    )
    assert found[-1][1].end_ms > 1000 + (len(first) + len(second)) * 1000 / VAD_RATE - 300


def test_voice_pending_holds_the_endpoint_until_the_maximum_delay():
    policy = TurnPolicy(500, 3000, 1000)
    assert isinstance(policy.speech_started(0), TurnStarted)
    policy.speech_stopped(1000)
    assert policy.tick(1499) is None
    assert policy.tick(1600, voice_pending=True) is None
    assert policy.tick(3999, voice_pending=True) is None
    ended = policy.tick(4000, voice_pending=True)
    assert ended == TurnEnded(0, 1000, 4000, 500)
    assert ended.latency_ms == 3000


def test_exact_endpoint_and_continuation_arithmetic():
    policy = TurnPolicy(500, 3000, 1000)
    assert not policy.awaiting_end  # no turn
    assert policy.speech_started(100) == TurnStarted(100)
    assert policy.tick(200) is None  # speaking
    assert not policy.awaiting_end
    policy.speech_stopped(900)
    assert policy.awaiting_end  # quiet in an open turn: a tick may end it
    assert policy.speech_started(1300) is None  # a 400 ms pause inside the turn
    policy.speech_stopped(2000)
    assert policy.pauses.delay_ms == 500  # 1.2 * 400 = 480: the minimum
    assert policy.tick(2499) is None
    assert policy.tick(2500) == TurnEnded(100, 2000, 2500, 500)
    assert not policy.in_turn and not policy.awaiting_end
    assert policy.speech_started(3400) == TurnContinued(3400, 100, 1400)
    assert policy.in_turn
    policy.speech_stopped(4000)
    assert policy.pauses.delay_ms == 1680  # 1.2 * 1400: the split pause is the 80 % one
    assert policy.tick(5679) is None
    assert policy.tick(5680) == TurnEnded(100, 4000, 5680, 1680)
    assert policy.speech_started(6681) == TurnStarted(6681)  # 1001 ms after: a new turn


def test_the_delay_stays_within_its_bounds_and_follows_recent_pauses():
    model = PauseModel(500, 3000)
    assert model.delay_ms == 500
    model.observe(100)
    assert model.delay_ms == 500
    model.observe(5000)
    assert model.delay_ms == 3000
    for _ in range(8):
        model.observe(600)
    assert model.delay_ms == 720  # the 5 s pause has left the window of 8
    assert PauseModel(500, 3000, adaptive=False).delay_ms == 500
    with pytest.raises(ValueError):
        PauseModel(600, 500)
    with pytest.raises(ValueError):
        PauseModel(400, 3000, initial_delay_ms=300)


def test_an_unknown_speaker_is_waited_for_then_answered_as_soon_as_their_pauses_allow():
    model = PauseModel(400, 3000, initial_delay_ms=750)
    assert model.delay_ms == 750  # no pause known: a sentence's pause is waited out
    model.observe(240)
    assert model.delay_ms == 400  # 1.2 * 240 = 288: the minimum
    model.observe(600)
    assert model.delay_ms == 720  # the longer pause, with its margin
    assert PauseModel(400, 3000, adaptive=False, initial_delay_ms=750).delay_ms == 400


def test_a_fresh_speakers_700_ms_pause_is_one_turn_with_the_default_delays(tmp_path):
    """The defaults (400 / 750 / 3000 ms): the first phrase's pause is waited out by the
    initial delay, and the turn's end waits as long as that pause, with its margin."""
    first = espeak("I think we should move the launch", VAD_RATE, tmp_path)
    second = espeak("to the second week of March", VAD_RATE, tmp_path)
    signal = np.concatenate(
        [silence(1, VAD_RATE), first, silence(0.4, VAD_RATE), second, silence(3, VAD_RATE)]
    )  # with the 300 ms of silence espeak ends a phrase with: a 700 ms pause
    found = turns(signal, TurnPolicy(400, 3000, 1000, initial_delay_ms=750))
    assert [type(e) for _, e in found] == [TurnStarted, TurnEnded]
    ended = found[-1][1]
    assert ended.end_ms > 1000 + (len(first) + len(second)) * 1000 / VAD_RATE - 300
    assert 750 < ended.delay_ms <= PAUSE_MARGIN * 800  # 700 ms and the VAD's tail


def test_the_config_keeps_the_delays_in_order():
    from pydantic import ValidationError

    from bridge.config import BridgeConfig

    config = BridgeConfig()
    assert (config.turn_min_delay_ms, config.turn_initial_delay_ms) == (400, 750)
    with pytest.raises(ValidationError, match="turn_min_delay_ms <= turn_initial_delay_ms"):
        BridgeConfig(turn_initial_delay_ms=300)
    with pytest.raises(ValidationError, match="turn_initial_delay_ms <= turn_max_delay_ms"):
        BridgeConfig(turn_max_delay_ms=600)
