import numpy as np
import pytest

from benchmarks.load import rss_kb
from bridge.audio.ring import RingBuffer


def read(ring: RingBuffer, n: int) -> list[int]:
    out = np.zeros(n, dtype=np.int16)
    got = ring.read_into(out)
    return out[:got].tolist()


def test_write_then_read_in_order():
    ring = RingBuffer(8)
    assert ring.write(np.arange(5, dtype=np.int16)) == 5
    assert ring.available == 5 and ring.free == 3
    assert read(ring, 3) == [0, 1, 2]
    assert read(ring, 10) == [3, 4]
    assert ring.available == 0


def test_wrap_around_keeps_order():
    ring = RingBuffer(5)
    ring.write(np.array([1, 2, 3, 4], dtype=np.int16))
    assert read(ring, 3) == [1, 2, 3]
    # write index is at 4: the next 4 samples wrap past the end
    assert ring.write(np.array([5, 6, 7, 8], dtype=np.int16)) == 4
    assert ring.available == 5
    assert read(ring, 5) == [4, 5, 6, 7, 8]


def test_read_across_the_end_many_times():
    ring = RingBuffer(7)
    expected, produced = [], 0
    for step in range(50):
        n = (step % 5) + 1
        chunk = np.arange(produced, produced + n, dtype=np.int16)
        produced += ring.write(chunk)
        expected.extend(read(ring, (step % 3) + 2))
    expected.extend(read(ring, 7))
    assert expected == list(range(produced))


def test_overflow_is_refused_and_counted():
    ring = RingBuffer(4)
    assert ring.write(np.arange(6, dtype=np.int16)) == 4
    assert ring.overflowed == 2
    assert ring.write(np.array([9], dtype=np.int16)) == 0
    assert ring.overflowed == 3
    assert read(ring, 4) == [0, 1, 2, 3]  # the oldest audio is kept, never overwritten


def test_clear_reports_dropped():
    ring = RingBuffer(4)
    ring.write(np.arange(3, dtype=np.int16))
    assert ring.clear() == 3
    assert ring.available == 0 and ring.free == 4


def test_capacity_must_be_positive():
    with pytest.raises(ValueError):
        RingBuffer(0)


def test_a_stream_that_never_backs_up_touches_only_the_front_of_the_buffer():
    """An emptied ring starts again at index 0: a live stream of frames read as they come
    writes only the first frame's worth of a large buffer (the rest never becomes resident)."""
    ring = RingBuffer(72_000)  # 3 s at 24 kHz, as the playback queue
    frame = np.ones(480, dtype=np.int16)
    for _ in range(1000):  # 20 s of live frames
        ring.write(frame)
        assert read(ring, 480) == [1] * 480
    assert not ring._data[480:].any()


def test_a_backlog_stays_resident_only_until_the_ring_empties():
    """A backlog makes a ring's pages resident; emptying it (read out or cleared) gives them
    back to the OS, all but the front the next writes use."""
    rings = [RingBuffer(1_000_000) for _ in range(32)]  # 2 MB each, 64 MB in all
    before = rss_kb("self")
    backlog = np.ones(1_000_000, dtype=np.int16)
    for ring in rings:
        ring.write(backlog)
    assert rss_kb("self") - before > 60_000  # the backlog is in memory
    out = np.zeros(1_000_000, dtype=np.int16)
    for ring in rings[:16]:
        assert ring.read_into(out) == 1_000_000 and out.all()
    for ring in rings[16:]:
        assert ring.clear() == 1_000_000
    del backlog, out
    assert rss_kb("self") - before < 2_000  # 32 fronts of 16 KB kept, and the test's own
    for ring in rings:  # and the rings work on from their front
        ring.write(np.arange(5, dtype=np.int16))
        assert read(ring, 5) == [0, 1, 2, 3, 4]
