import numpy as np
import pytest

from bridge.audio.framer import Framer, frame_samples, frames_of


def test_frame_samples():
    assert frame_samples(24000, 20) == 480
    assert frame_samples(16000, 10) == 160
    with pytest.raises(ValueError, match="frame_ms"):
        frame_samples(16000, 25)


def test_chunks_of_any_length_become_blocks_of_exact_frames():
    signal = np.arange(10_000, dtype=np.int16)
    framer = Framer(frame_size=480)
    rng = np.random.default_rng(1)
    blocks, at = [], 0
    while at < len(signal):
        n = int(rng.integers(1, 3000))  # some chunks hold many frames, some none
        block = framer.take(signal[at : at + n])
        assert len(block) % 480 == 0
        blocks.append(block.copy())
        at = min(at + n, len(signal))
        assert framer.pending == at % 480  # never a whole frame left waiting
    whole = len(signal) // 480
    assert np.array_equal(np.concatenate(blocks), signal[: whole * 480])


def test_flush_pads_the_last_frame():
    framer = Framer(frame_size=4)
    assert framer.take(np.array([1, 2, 3, 4, 5, 6], dtype=np.int16)).tolist() == [1, 2, 3, 4]
    last = framer.flush()
    assert last is not None and last.tolist() == [5, 6, 0, 0]
    assert framer.flush() is None


def test_an_aligned_chunk_is_its_own_block_and_the_rest_is_kept():
    framer = Framer(frame_size=4)
    chunk = np.arange(10, dtype=np.int16)
    block = framer.take(chunk)
    assert block.tolist() == list(range(8)) and np.shares_memory(block, chunk)  # no copy
    assert framer.pending == 2
    assert framer.take(np.array([10], dtype=np.int16)).tolist() == []  # still under a frame
    assert framer.take(np.array([11, 12], dtype=np.int16)).tolist() == [8, 9, 10, 11]
    assert framer.pending == 1


def test_frames_of_a_block_are_views_of_it():
    block = np.arange(12, dtype=np.int16)
    frames = frames_of(block, 4)
    assert [f.tolist() for f in frames] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert all(np.shares_memory(f, block) for f in frames)


def test_whole_frame_chunks_between_odd_ones_keep_the_stream_exact():
    """A chunk of whole frames with nothing waiting (a bot's 20 or 100 ms) is its own block;
    one that comes while samples wait is joined to them, not passed through."""
    sizes = [960, 7, 473, 480, 2400, 0, 100, 480, 380, 1440]
    signal = np.arange(sum(sizes), dtype=np.int16)
    framer, blocks, at = Framer(frame_size=480), [], 0
    for n in sizes:
        chunk = signal[at : at + n]
        waiting = framer.pending
        block = framer.take(chunk)
        assert (block is chunk) == (waiting == 0 and n % 480 == 0)
        blocks.append(block.copy())
        at += n
        assert framer.pending == at % 480
    assert np.array_equal(np.concatenate(blocks), signal[: len(signal) // 480 * 480])


def test_what_waits_is_a_copy_so_a_reused_chunk_buffer_cannot_change_it():
    framer, buffer = Framer(frame_size=4), np.zeros(3, dtype=np.int16)
    blocks = []
    for first in (1, 11):  # the caller fills the same buffer for each chunk
        buffer[:] = [first, first + 1, first + 2]
        blocks.append(framer.take(buffer).tolist())
        buffer[:] = -1
    assert blocks == [[], [1, 2, 3, 11]] and framer.pending == 2
    last = framer.flush()
    assert last is not None and last.tolist() == [12, 13, 0, 0]


def test_half_frame_chunks_give_a_frame_every_other_chunk():
    """Today's bot sends 10 ms; the frame is 20 ms: one chunk waits, the next completes it."""
    signal = np.arange(4800, dtype=np.int16)
    framer = Framer(frame_size=480)
    blocks = [framer.take(signal[at : at + 240]) for at in range(0, 4800, 240)]
    assert [len(b) for b in blocks] == [0, 480] * 10
    assert np.array_equal(np.concatenate(blocks), signal)
