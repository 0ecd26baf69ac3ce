import numpy as np
import pytest
import webrtcvad

from bridge.audio.framer import frame_samples, frames_of
from bridge.audio.vad import (
    VAD_RATE,
    SpeechOnset,
    SpeechStarted,
    SpeechStopped,
    VoiceActivityDetector,
    spectral_flatness,
)
from tests.sounds import espeak, recording, silence, white_noise


def whole_frames(signal: np.ndarray, size: int) -> list[np.ndarray]:
    return frames_of(signal[: len(signal) // size * size], size)


def events(signal: np.ndarray, frame_ms: int = 20, **kwargs) -> list:
    vad = VoiceActivityDetector(frame_ms, **kwargs)
    size = frame_samples(VAD_RATE, frame_ms)
    found = (vad.process(f) for f in whole_frames(signal, size))
    return [e for e in found if isinstance(e, SpeechStarted | SpeechStopped)]


@pytest.mark.parametrize("name", ["Front_Left", "Front_Right", "Rear_Center", "Side_Right"])
@pytest.mark.parametrize("frame_ms", [10, 20, 30])
def test_finds_the_speech_in_a_real_recording(name, frame_ms):
    speech = recording(name, VAD_RATE)
    found = events(np.concatenate([silence(1, VAD_RATE), speech, silence(1, VAD_RATE)]), frame_ms)
    assert len(found) >= 2
    assert isinstance(found[0], SpeechStarted) and isinstance(found[-1], SpeechStopped)
    speech_ms = len(speech) * 1000 / VAD_RATE
    # the segment lies within the recording (which starts at 1000 ms), give or take a window
    assert 900 <= found[0].at_ms <= 1300
    assert 1000 + speech_ms - 500 <= found[-1].at_ms <= 1000 + speech_ms + 300


def test_finds_every_sentence_of_synthetic_speech(tmp_path):
    first = espeak("Good morning everyone, let us begin the meeting.", VAD_RATE, tmp_path)
    second = espeak("Thank you, that is all for today.", VAD_RATE, tmp_path)
    gap = silence(1.5, VAD_RATE)
    found = events(np.concatenate([gap, first, gap, second, gap]))
    starts = [e.at_ms for e in found if isinstance(e, SpeechStarted)]
    assert len(starts) >= 2
    second_at = (len(gap) * 2 + len(first)) * 1000 / VAD_RATE
    assert any(abs(s - second_at) < 300 for s in starts)
    assert not any(1500 + len(first) * 1000 / VAD_RATE + 600 < s < second_at - 300 for s in starts)


def test_no_speech_in_silence():
    assert events(silence(5, VAD_RATE)) == []


@pytest.mark.parametrize("sigma", [100, 1000, 5000, 15000])
def test_no_speech_in_white_noise(sigma):
    assert events(white_noise(5, VAD_RATE, sigma)) == []


def test_no_speech_in_recorded_noise():
    noise = recording("Noise", VAD_RATE)
    assert events(np.concatenate([silence(1, VAD_RATE), noise, noise, silence(1, VAD_RATE)])) == []


def test_without_the_flatness_gate_webrtcvad_alone_takes_noise_for_speech():
    """Why the gate exists: the same noise fools webrtcvad at its most aggressive."""
    noise = white_noise(3, VAD_RATE, 5000)
    assert events(noise, max_flatness=1.0) != []


def test_stop_comes_after_the_hangover():
    speech = recording("Front_Left", VAD_RATE)
    vad = VoiceActivityDetector(20, stop_ms=500)
    size = frame_samples(VAD_RATE, 20)
    signal = np.concatenate([speech, silence(2, VAD_RATE)])
    for i, frame in enumerate(whole_frames(signal, size)):
        event = vad.process(frame)
        if isinstance(event, SpeechStopped):
            heard_at_ms = (i + 1) * 20
            assert heard_at_ms - event.at_ms == 500  # reported back-dated by the window
            assert heard_at_ms >= len(speech) * 1000 / VAD_RATE
            return
    pytest.fail("speech never stopped")


def reference_events(frames: list[np.ndarray], start_ms: int, stop_ms: int) -> list:
    """Every frame judged at once by webrtcvad and the gate, then the windows' rule: what the
    detector's lazy gate must reproduce exactly."""
    vad = webrtcvad.Vad(3)
    voiced = [vad.is_speech(f.tobytes(), VAD_RATE) and spectral_flatness(f) <= 0.1 for f in frames]
    start_n, stop_n = start_ms // 20, stop_ms // 20
    found, speaking, since = [], False, 0  # since: index where the current window began
    for i in range(len(frames)):
        n = stop_n if speaking else start_n
        if i + 1 - since < n:
            continue
        votes = voiced[i + 1 - n : i + 1]
        if not speaking and sum(votes) >= VoiceActivityDetector.START_RATIO * n:
            speaking, since = True, i + 1
            found.append(SpeechStarted((i + 1 - n) * 20))
        elif speaking and votes.count(False) >= VoiceActivityDetector.STOP_RATIO * n:
            speaking, since = False, i + 1
            found.append(("stop", (i + 1 - n) * 20))
    return found


@pytest.mark.parametrize(("start_ms", "stop_ms"), [(200, 500), (100, 300), (60, 1000)])
def test_lazy_gate_decides_exactly_as_judging_every_frame(start_ms, stop_ms):
    speech = np.concatenate([recording(n, VAD_RATE) for n in ("Front_Left", "Rear_Center")])
    noise = white_noise(len(speech) / VAD_RATE, VAD_RATE, 3000)
    mixed = speech // 2 + noise // 2  # voice over hiss: webrtcvad fires, the gate must judge
    signal = np.concatenate([silence(0.5, VAD_RATE), speech, noise, mixed, speech, noise])
    size = frame_samples(VAD_RATE, 20)
    frames = [signal[i : i + size] for i in range(0, len(signal) - size + 1, size)]
    vad = VoiceActivityDetector(20, start_ms=start_ms, stop_ms=stop_ms)
    found = [e for f in frames if isinstance(e := vad.process(f), SpeechStarted | SpeechStopped)]
    simplified = [e if isinstance(e, SpeechStarted) else ("stop", e.at_ms) for e in found]
    assert simplified == reference_events(frames, start_ms, stop_ms)
    assert len(found) >= 4  # the signal does start and stop speech several times


@pytest.mark.parametrize("aggressiveness", [0, 1, 2, 3])
@pytest.mark.parametrize("frame_ms", [10, 20, 30])
def test_each_frame_is_voiced_exactly_when_webrtcvads_own_wrapper_says_so(aggressiveness, frame_ms):
    # the Core calls webrtcvad's C on the instance directly: its verdicts must be the wrapper's
    speech = recording("Front_Center", VAD_RATE)
    signal = np.concatenate([silence(0.3, VAD_RATE), speech, white_noise(1, VAD_RATE, 3000)])
    wrapper = webrtcvad.Vad(aggressiveness)
    vad = VoiceActivityDetector(frame_ms, aggressiveness)
    verdicts = []
    for frame in whole_frames(signal, frame_samples(VAD_RATE, frame_ms)):
        vad.process(frame)
        verdicts.append(vad.last_voiced_ms == vad.position_ms)
        assert verdicts[-1] == wrapper.is_speech(frame.tobytes(), VAD_RATE)
    assert 0 < sum(verdicts) < len(verdicts)


def numpy_flatness(frame: np.ndarray) -> float:
    """The gate's measure by numpy: the Hann-windowed rfft's bins 2 and up."""
    spectrum = np.abs(np.fft.rfft(frame * np.hanning(len(frame)))[2:]) + 3e-5
    return float(np.exp(np.mean(np.log(spectrum**2))) / np.mean(spectrum**2))


@pytest.mark.parametrize("frame_ms", [10, 20, 30])
def test_flatness_equals_the_fft_measure(frame_ms):
    """The compiled gate's FFT (double precision) gives numpy's measure on every frame of
    speech and of noise, to rounding."""
    size = frame_samples(VAD_RATE, frame_ms)
    signal = np.concatenate([recording("Front_Left", VAD_RATE), white_noise(1, VAD_RATE, 3000)])
    for frame in whole_frames(signal, size):
        assert spectral_flatness(frame) == pytest.approx(numpy_flatness(frame), rel=1e-9)


@pytest.mark.parametrize("size", [4, 6, 14, 98, 478])
def test_flatness_of_other_frame_sizes_equals_the_fft_measure(size):
    """Sizes whose halves have factors other than 2, 3 and 5 (7, 239) take the same FFT."""
    frame = recording("Front_Left", VAD_RATE)[4000 : 4000 + size]
    assert spectral_flatness(frame) == pytest.approx(numpy_flatness(frame), rel=1e-9)


@pytest.mark.parametrize("size", [2, 81, 482])
def test_flatness_of_an_odd_or_out_of_range_frame_is_refused(size):
    with pytest.raises(ValueError, match=f"even 4 to 480 samples, not {size}"):
        spectral_flatness(np.zeros(size, np.int16))


def test_onset_comes_after_onset_ms_of_voice_and_before_the_start():
    """The onset is heard 60 ms into the voice, back-dated to its first frame; the start
    (the 200 ms window) follows, on the same speech."""
    speech = recording("Front_Left", VAD_RATE)
    vad = VoiceActivityDetector(20, onset_ms=60)
    size = frame_samples(VAD_RATE, 20)
    heard = []
    for i, frame in enumerate(whole_frames(np.concatenate([silence(1, VAD_RATE), speech]), size)):
        if (event := vad.process(frame)) is not None:
            heard.append(((i + 1) * 20, event))
    onsets = [(t, e) for t, e in heard if isinstance(e, SpeechOnset)]
    starts = [(t, e) for t, e in heard if isinstance(e, SpeechStarted)]
    assert onsets and starts
    (onset_heard, onset), (start_heard, start) = onsets[0], starts[0]
    assert onset_heard - onset.at_ms == 60
    assert onset_heard < start_heard
    assert 1000 <= onset.at_ms <= start.at_ms + 200
    assert vad.last_voiced_ms > start_heard - 20


def test_no_onset_in_white_noise_but_webrtcvad_fires_on_it():
    noise = white_noise(3, VAD_RATE, 5000)
    size = frame_samples(VAD_RATE, 20)
    vad = VoiceActivityDetector(20)
    found = [vad.process(noise[i : i + size]) for i in range(0, len(noise) - size + 1, size)]
    assert not any(isinstance(e, SpeechOnset) for e in found)
    assert vad.last_voiced_ms > 0  # webrtcvad's vote alone did call it voice


def test_masked_frames_are_never_speech():
    speech = np.concatenate([silence(0.5, VAD_RATE), recording("Front_Left", VAD_RATE)])
    size = frame_samples(VAD_RATE, 20)
    vad = VoiceActivityDetector(20)
    found = [
        vad.process(speech[i : i + size], masked=True)
        for i in range(0, len(speech) - size + 1, size)
    ]
    assert found == [None] * len(found) and vad.last_voiced_ms < 0


def test_onset_pending_while_the_start_window_holds_voice():
    speech = recording("Front_Left", VAD_RATE)
    size = frame_samples(VAD_RATE, 20)
    vad = VoiceActivityDetector(20, start_ms=200)
    pending = []
    for i in range(0, len(speech) - size + 1, size):
        event = vad.process(speech[i : i + size])
        pending.append(vad.onset_pending)
        if isinstance(event, SpeechStarted):
            break
    assert any(pending[:-1]) and not pending[-1]  # pending before the start, not once in speech


def test_a_detector_is_set_up_once_and_a_second_setup_leaves_it_as_it_was():
    vad = VoiceActivityDetector(20)
    with pytest.raises(ValueError, match="once"):
        vad.__init__(30)  # its windows hold 20 ms frames: a 30 ms setup must not touch them
    speech = recording("Front_Left", VAD_RATE)
    frames = whole_frames(np.concatenate([silence(1, VAD_RATE), speech]), 160)
    found = [e for f in frames if isinstance(e := vad.process(f), SpeechStarted)]
    assert found and vad.position_ms == len(frames) * 20
