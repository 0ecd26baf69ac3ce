import numpy as np
import pytest

from bridge.audio.framer import Framer, frame_samples


def test_frame_samples():
    assert frame_samples(24000, 20) == 480
    assert frame_samples(16000, 10) == 160
    with pytest.raises(ValueError, match="frame_ms"):
        frame_samples(16000, 25)


def test_chunks_of_any_length_become_exact_frames():
    signal = np.arange(10_000, dtype=np.int16)
    framer = Framer(frame_size=480, capacity=1000)
    rng = np.random.default_rng(1)
    frames, at = [], 0
    while at < len(signal):
        n = int(rng.integers(1, 3000))  # some chunks are larger than the ring buffer
        frames += [f.copy() for f in framer.feed(signal[at : at + n])]
        at += n
    assert all(len(f) == 480 for f in frames)
    whole = len(signal) // 480
    assert len(frames) == whole
    assert np.array_equal(np.concatenate(frames), signal[: whole * 480])
    assert framer.pending == len(signal) - whole * 480


def test_flush_pads_the_last_frame():
    framer = Framer(frame_size=4, capacity=8)
    assert next(framer.feed(np.array([1, 2, 3, 4, 5, 6], dtype=np.int16))).tolist() == [
        1,
        2,
        3,
        4,
    ]
    last = framer.flush()
    assert last is not None and last.tolist() == [5, 6, 0, 0]
    assert framer.flush() is None


def test_frames_of_an_aligned_chunk_are_views_of_it_and_the_rest_is_kept():
    framer = Framer(frame_size=4, capacity=8)
    chunk = np.arange(10, dtype=np.int16)
    frames = list(framer.feed(chunk))
    assert [f.tolist() for f in frames] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert all(np.shares_memory(f, chunk) for f in frames)  # no copy through the ring
    assert framer.pending == 2
    assert [f.tolist() for f in framer.feed(np.array([10, 11], dtype=np.int16))] == [[8, 9, 10, 11]]
