import numpy as np
import pytest
import soxr

from bridge.audio.resample import StreamResampler
from tests.sounds import recording, tone


def stream(resampler: StreamResampler, signal: np.ndarray, sizes: list[int]) -> np.ndarray:
    out, at = [], 0
    for n in sizes:
        out.append(resampler.process(signal[at : at + n]))
        at += n
    out.append(resampler.process(signal[at:]))
    out.append(resampler.flush())
    return np.concatenate(out)


@pytest.mark.parametrize(("src", "dst"), [(24000, 16000), (16000, 24000), (48000, 16000)])
def test_streaming_equals_one_shot(src, dst):
    signal = recording("Front_Left", src)
    one_shot = soxr.resample(signal, src, dst, quality="HQ")
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, src // 20, size=200).tolist()  # 1 sample to 50 ms per chunk
    streamed = stream(StreamResampler(src, dst), signal, sizes)
    assert abs(len(streamed) - len(one_shot)) <= 1
    n = min(len(streamed), len(one_shot))
    error = np.abs(streamed[:n].astype(int) - one_shot[:n].astype(int))
    assert error.max() <= 2  # s16 rounding only


def test_no_discontinuity_at_chunk_boundaries():
    """A pure tone resampled in 20 ms chunks stays a pure tone: no clicks where chunks join."""
    src, dst = 24000, 16000
    signal = tone(440, 2.0, src)
    out = stream(StreamResampler(src, dst), signal, [480] * 99)
    expected = tone(440, len(out) / dst, dst)  # soxr compensates its delay: same phase
    middle = slice(dst // 10, len(out) - dst // 10)  # skip the filter's edges
    residual = out[middle].astype(float) - expected[middle].astype(float)
    assert np.abs(residual).max() < 0.002 * 32767
    # and the worst sample-to-sample step is what a 440 Hz sine allows, nothing more
    steps = np.abs(np.diff(out[middle].astype(float)))
    assert steps.max() <= 0.5 * 32767 * 2 * np.pi * 440 / dst * 1.01


def test_same_rate_is_a_pass_through():
    resampler = StreamResampler(16000, 16000)
    chunk = tone(300, 0.02, 16000)
    assert resampler.passthrough and resampler.delay_ms == 0
    assert resampler.process(chunk) is chunk
    assert len(resampler.flush()) == 0
