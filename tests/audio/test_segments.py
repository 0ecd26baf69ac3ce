import numpy as np

from bridge.audio.segments import SegmentCollector
from bridge.plugins.speakers import SpeakerTurns


def frames(n: int, start: int = 0) -> list[np.ndarray]:
    return [np.full(4, start + i, dtype=np.int16) for i in range(n)]


def test_segment_keeps_preroll_and_trims_after_the_tail():
    collector = SegmentCollector(frame_ms=20, preroll_ms=40, tail_ms=20, max_ms=1000)
    for f in frames(10):  # frames 0-9 at 0..180 ms
        collector.add(f)
    collector.start(at_ms=140)  # pre-roll keeps frames from 100 ms: 5, 6, 7, 8, 9
    for f in frames(10, start=10):  # 200..380 ms
        collector.add(f)
    audio = collector.stop(at_ms=260)  # keep up to 280 ms (tail): frames up to 13
    assert audio is not None
    assert sorted(set(audio.tolist())) == list(range(5, 14))
    assert collector.stop(at_ms=400) is None  # no open segment


def test_segment_is_bounded():
    collector = SegmentCollector(frame_ms=20, preroll_ms=0, tail_ms=0, max_ms=100)
    collector.start(at_ms=0)
    for f in frames(8):
        collector.add(f)
    audio = collector.stop(at_ms=1000)
    assert len(audio) == 5 * 4 and collector.frames_cut == 3


def test_speaker_turns_pick_who_spoke_longest():
    turns = SpeakerTurns()
    turns.update(0, [{"name": "Alice", "isSpeaking": True}])
    turns.update(
        1000, [{"name": "Alice", "isSpeaking": False}, {"name": "Bob", "isSpeaking": True}]
    )
    turns.update(1200, [{"name": "Bob", "isSpeaking": False}])
    assert turns.main_speaker(500, 1100) == "Alice"  # 500 ms of Alice, 100 of Bob
    assert turns.main_speaker(950, 1300) == "Bob"
    assert turns.main_speaker(2000, 2500) == "Bob"  # nobody spoke: the last one before
    assert SpeakerTurns().main_speaker(0, 100) is None
