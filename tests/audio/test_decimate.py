"""The VAD's decimator: exact group means, continuity across any chunking, and what it filters."""

import numpy as np
import pytest

from bridge.audio.decimate import Decimator
from tests.sounds import recording


def tone(freq: float, rate: int, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (10000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def test_each_output_sample_is_the_mean_of_its_group_truncated():
    chunk = np.array([3, 4, 5, -1, -1, -2, 32767, 32767, 32767, -32768, -32768, -32767], np.int16)
    assert Decimator(24000, 8000).process(chunk).tolist() == [4, -1, 32767, -32767]


@pytest.mark.parametrize("rate", [16000, 24000, 32000, 48000])
def test_any_chunking_gives_the_same_stream(rate):
    speech = recording("Front_Center", rate)
    whole = Decimator(rate, 8000).process(speech)
    chunked, at, rng = Decimator(rate, 8000), 0, np.random.default_rng(7)
    parts = []
    while at < len(speech):
        size = int(rng.integers(0, 700))  # empty, odd, and multi-group chunks
        parts.append(chunked.process(speech[at : at + size]))
        at += size
    assert np.array_equal(np.concatenate(parts), whole)
    assert len(whole) == len(speech) // (rate // 8000)


def test_the_voice_band_passes_and_the_band_that_would_fold_onto_it_is_cut():
    passed = Decimator(24000, 8000).process(tone(500, 24000))
    assert np.abs(passed).max() > 9800  # 500 Hz: -0.1 dB
    folded = Decimator(24000, 8000).process(tone(8000, 24000))
    assert np.abs(folded).max() <= 2  # 8 kHz would alias to DC: the boxcar's null


def test_a_rate_that_is_no_whole_multiple_is_refused():
    with pytest.raises(ValueError, match="22050 Hz is not a whole multiple of 8000 Hz"):
        Decimator(22050, 8000)


def test_same_rate_passes_the_chunk_through_with_no_delay():
    decimator = Decimator(8000, 8000)
    chunk = np.arange(10, dtype=np.int16)
    assert decimator.process(chunk) is chunk and decimator.delay_ms == 0
