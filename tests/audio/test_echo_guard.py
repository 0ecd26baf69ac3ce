"""Self-echo guard: the bot's own speech mixed back into the meeting, found and masked."""

import numpy as np
import pytest

from bridge.audio.echo_guard import EchoGuard
from bridge.audio.vad import VAD_RATE, SpeechOnset, SpeechStarted, VoiceActivityDetector
from tests.sounds import espeak, recording, silence, tone, white_noise

FRAME = 160  # 20 ms at 8 kHz


def meeting(bot: np.ndarray, delay_ms: int, gain_db: float, user: np.ndarray | None = None):
    """What the meeting sends back: the bot's speech delayed and attenuated, over room noise,
    plus a user's speech if given."""
    delay = delay_ms * VAD_RATE // 1000
    out = np.zeros(len(bot) + delay + VAD_RATE, dtype=np.float64)
    out[delay : delay + len(bot)] += bot * 10 ** (gain_db / 20)
    out += white_noise(len(out) / VAD_RATE, VAD_RATE, 30, seed=1)[: len(out)]
    if user is not None:
        out[: len(user)] += user
    return np.clip(out, -32768, 32767).astype(np.int16)


def speech_events(bot: np.ndarray, heard: np.ndarray, guard: EchoGuard | None) -> list:
    """Feed the bot's frames as played (each at its stream time) and judge the meeting's."""
    vad = VoiceActivityDetector(20, stop_ms=200)
    found = []
    for i in range(0, len(heard) - FRAME + 1, FRAME):
        at_ms = i * 1000 / VAD_RATE
        if guard is not None:
            if i + FRAME <= len(bot):
                guard.played(bot[i : i + FRAME], at_ms)
            masked = guard.is_echo(heard[i : i + FRAME], at_ms)
        else:
            masked = False
        event = vad.process(heard[i : i + FRAME], masked)
        if isinstance(event, SpeechOnset | SpeechStarted):
            found.append(event)
    return found


@pytest.fixture(scope="module")
def bot_speech(tmp_path_factory) -> np.ndarray:
    said = espeak(
        "Here is the summary of the last quarter, with the figures.",
        VAD_RATE,
        tmp_path_factory.mktemp("espeak"),
    )
    return np.concatenate([silence(0.5, VAD_RATE), said, recording("Front_Left", VAD_RATE)])


@pytest.mark.parametrize("delay_ms", [150, 300, 450, 600])
@pytest.mark.parametrize("gain_db", [-6, -12, -20])
def test_the_bots_own_speech_coming_back_is_masked_once_its_path_is_found(
    bot_speech, delay_ms, gain_db
):
    """Only the first echo's first frames pass (the path is not known yet): the onsets and
    starts they make come within its first second (its first 300 ms from -12 dB up); from
    then on the whole echo is silence to the VAD."""
    heard = meeting(bot_speech, delay_ms, gain_db)
    guard = EchoGuard(20)
    found = speech_events(bot_speech, heard, guard)
    first_echo_ms = 500 + delay_ms  # the espeak phrase starts at 0.5 s, its echo this late
    learnt_ms = 300 if gain_db >= -12 else 1000
    assert len(found) <= (2 if gain_db >= -12 else 4)
    assert all(first_echo_ms - 40 <= e.at_ms <= first_echo_ms + learnt_ms for e in found)
    assert (
        guard.lag is not None and -20 <= delay_ms - guard.lag * 20 <= 40
    )  # lag and lag + 1 are paired
    # the gain is to the output's energy summed over two frames (the delay's two slots)
    assert 10 ** (gain_db / 10) / 4 < guard.gain < 10 ** (gain_db / 10)


@pytest.mark.parametrize("gain_db", [-6, -12])
def test_without_the_guard_the_echo_is_taken_for_speech(bot_speech, gain_db):
    heard = meeting(bot_speech, 300, gain_db)
    assert any(isinstance(e, SpeechStarted) for e in speech_events(bot_speech, heard, None))


@pytest.mark.parametrize("gain_db", [-6, -12, -20])
def test_a_user_talking_over_the_echo_is_heard(bot_speech, gain_db):
    user = np.concatenate([silence(3.0, VAD_RATE), recording("Rear_Center", VAD_RATE)])
    heard = meeting(bot_speech, 300, gain_db, user)
    found = speech_events(bot_speech, heard, EchoGuard(20))
    starts = [e.at_ms for e in found if isinstance(e, SpeechStarted)]
    voice_at = 3000 + np.flatnonzero(np.abs(recording("Rear_Center", VAD_RATE)) > 1000)[0] / 8
    assert any(abs(start - voice_at) < 250 for start in starts)


def test_a_user_speaking_while_the_bot_says_something_else_is_not_masked(bot_speech):
    user = np.concatenate([silence(1.3, VAD_RATE), recording("Front_Left", VAD_RATE)])
    bot = bot_speech
    guard = EchoGuard(20)
    masked_voice = 0
    for i in range(0, min(len(user), len(bot)) - FRAME + 1, FRAME):
        guard.played(bot[i : i + FRAME], i / 8)
        masked = guard.is_echo(user[i : i + FRAME], i / 8)
        masked_voice += masked and np.abs(user[i : i + FRAME]).max() > 300
    assert masked_voice <= 1


def test_the_delays_must_be_ordered():
    with pytest.raises(ValueError):
        EchoGuard(20, min_delay_ms=700, max_delay_ms=600)


def test_a_user_speaking_over_a_steady_tone_from_the_bot_is_not_masked():
    """A tone's envelope is flat: its onset against the user's is no path to the echo."""
    bot = np.concatenate([silence(0.3, VAD_RATE), tone(440, 3, VAD_RATE, 0.3)])
    user = np.concatenate([silence(0.5, VAD_RATE), recording("Front_Left", VAD_RATE)])
    guard = EchoGuard(20)
    for i in range(0, len(user) - FRAME + 1, FRAME):
        guard.played(bot[i : i + FRAME], i / 8)
        assert not guard.is_echo(user[i : i + FRAME], i / 8)
    assert guard.lag is None
