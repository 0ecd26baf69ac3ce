"""The VAD's input stage (VadFramer in bridge/audio/_vadcore.c): exact group means, whole
8 kHz frames, the same stream bit for bit under any chunking, and what the boxcar filters."""

import numpy as np
import pytest

from bridge.audio._vadcore import VadFramer
from bridge.audio.vad import VAD_RATE
from tests.sounds import recording, tone, white_noise

RATES = [16000, 24000, 32000, 48000]


def reference_means(signal: np.ndarray, factor: int) -> np.ndarray:
    """The whole stream's group means, each truncated toward zero, by numpy."""
    sums = signal[: len(signal) // factor * factor].astype(np.int64).reshape(-1, factor).sum(1)
    return (np.sign(sums) * (np.abs(sums) // factor)).astype(np.int16)


def loud_speech(rate: int) -> np.ndarray:
    """Real speech, then full-scale noise and both extremes: negative sums, clipped samples."""
    extremes = np.repeat(np.array([32767, -32768, -1, 1], np.int16), 257)
    return np.concatenate(
        [recording("Front_Center", rate), white_noise(0.3, rate, 20000), extremes]
    )


def chunk_sizes(kind: int | str, total: int) -> list[int]:
    if kind == "random":  # empty, odd, under a frame and many frames at once
        sizes, rng = [], np.random.default_rng(11)
        while sum(sizes) < total:
            sizes.append(int(rng.integers(0, 3000)))
        return sizes
    assert isinstance(kind, int)
    return [kind] * (total // kind + 1)


def test_each_output_sample_is_the_mean_of_its_group_truncated():
    chunk = np.array([3, 4, 5, -1, -1, -2, 32767, 32767, 32767, -32768, -32768, -32767], np.int16)
    framer = VadFramer(24000, 8000, 4)
    assert np.frombuffer(framer.take(chunk), np.int16).tolist() == [4, -1, 32767, -32767]
    assert framer.pending == 0


@pytest.mark.parametrize("chunk", [1, 7, 160, 480, 2400, "random"])
@pytest.mark.parametrize("rate", RATES)
def test_any_chunking_gives_the_reference_frames_bit_for_bit(rate, chunk):
    """After every chunk: exactly the whole frames of the means so far, the rest pending."""
    signal, factor = loud_speech(rate), rate // VAD_RATE
    reference = reference_means(signal, factor)
    for size in (80, 160, 240):
        framer, heard, at = VadFramer(rate, VAD_RATE, size), 0, 0
        for n in chunk_sizes(chunk, len(signal)):
            block = np.frombuffer(framer.take(signal[at : at + n]), np.int16)
            at = min(at + n, len(signal))
            means = at // factor
            assert heard + len(block) == means // size * size
            assert np.array_equal(block, reference[heard : heard + len(block)])
            assert framer.pending == means % size
            heard += len(block)
        assert heard == len(reference) // size * size


def test_at_8khz_the_frames_are_the_samples_themselves():
    signal = recording("Front_Left", VAD_RATE)
    framer, out = VadFramer(VAD_RATE, VAD_RATE, 160), []
    for at in range(0, len(signal), 333):
        out.append(np.frombuffer(framer.take(signal[at : at + 333]), np.int16))
    joined = np.concatenate(out)
    assert len(joined) == len(signal) // 160 * 160
    assert np.array_equal(joined, signal[: len(joined)])
    assert framer.delay_ms == 0 and framer.factor == 1


def test_the_voice_band_passes_and_the_band_that_would_fold_onto_it_is_cut():
    framer = VadFramer(24000, 8000, 160)
    passed = np.frombuffer(framer.take(tone(500, 1, 24000, 10000 / 32767)), np.int16)
    assert np.abs(passed).max() > 9800  # 500 Hz: -0.1 dB
    folded = np.frombuffer(VadFramer(24000, 8000, 160).take(tone(8000, 1, 24000)), np.int16)
    assert np.abs(folded).max() <= 2  # 8 kHz would alias to DC: the boxcar's null


@pytest.mark.parametrize("rate", RATES)
def test_the_delay_is_half_a_group(rate):
    factor = rate // VAD_RATE
    assert VadFramer(rate, VAD_RATE, 160).delay_ms == pytest.approx((factor - 1) / 2 * 1000 / rate)


def test_a_rate_that_is_no_whole_multiple_is_refused():
    with pytest.raises(ValueError, match="22050 Hz is not a whole multiple of 8000 Hz"):
        VadFramer(22050, 8000, 160)


@pytest.mark.parametrize("size", [0, 481])
def test_a_frame_size_out_of_range_is_refused(size):
    with pytest.raises(ValueError, match=f"frames of 1 to 480 samples, not {size}"):
        VadFramer(24000, 8000, size)


@pytest.mark.parametrize(
    "chunk",
    [
        np.zeros(480, np.float32),
        np.zeros(480, np.int32),
        np.zeros(480, np.uint16),
        bytes(960),
    ],
)
def test_samples_that_are_not_int16_are_refused(chunk):
    framer = VadFramer(24000, 8000, 160)
    with pytest.raises(TypeError, match="samples must be int16"):
        framer.take(chunk)
    assert framer.pending == 0


@pytest.mark.parametrize("chunk", [np.zeros(960, np.int16)[::2], np.zeros((2, 240), np.int16)])
def test_samples_that_are_not_one_contiguous_row_are_refused(chunk):
    framer = VadFramer(24000, 8000, 160)
    with pytest.raises(ValueError, match="one contiguous row"):
        framer.take(chunk)
    assert framer.pending == 0
    assert len(framer.take(np.zeros(480, np.int16))) == 320  # still whole, still framing


def test_something_without_samples_is_refused():
    with pytest.raises(TypeError):
        VadFramer(24000, 8000, 160).take([1, 2, 3])
