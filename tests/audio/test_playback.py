import numpy as np

from bridge.audio.playback import PlaybackQueue, PlaybackReport


def samples(n: int, value: int = 1) -> np.ndarray:
    return np.full(n, value, dtype=np.int16)


def test_reads_attribute_samples_to_utterances_in_order():
    queue = PlaybackQueue(100)
    first, second = queue.open(), None
    assert queue.write(first, samples(30, 1)) == 30
    queue.close(first)
    second = queue.open()
    queue.write(second, samples(30, 2))
    out = np.zeros(40, dtype=np.int16)
    n, reports = queue.read(out)
    assert n == 40 and out.tolist() == [1] * 30 + [2] * 10
    assert reports == [PlaybackReport(first, 30, 0, interrupted=False)]
    assert queue.producing  # the second utterance may still grow
    assert queue.close(second) == []  # 20 of it are still queued
    n, reports = queue.read(out)
    assert n == 20 and reports == [PlaybackReport(second, 30, 0, interrupted=False)]
    assert queue.idle


def test_write_is_bounded_by_capacity():
    queue = PlaybackQueue(50)
    uid = queue.open()
    assert queue.write(uid, samples(80)) == 50
    assert queue.free == 0


def test_clear_reports_what_was_sent_and_dropped():
    queue = PlaybackQueue(100)
    uid = queue.open()
    queue.write(uid, samples(60))
    queue.read(np.zeros(25, dtype=np.int16))
    assert queue.clear() == [PlaybackReport(uid, 25, 35, interrupted=True)]
    assert queue.idle and queue.available == 0
    assert queue.write(uid, samples(10)) == 0  # a cleared utterance takes no more audio
