"""CatchUp: a lasting live wait is shed in whole frames; jitter and short bursts are not."""

from bridge.audio.catchup import CatchUp

FRAME = 480  # 20 ms at 24 kHz


def run(catchup: CatchUp, waits: list[int]) -> list[bool]:
    return [catchup.keep(wait, FRAME) for wait in waits]


def test_jitter_that_drains_is_never_shed():
    catchup = CatchUp(window=10 * FRAME, limit=50 * FRAME)
    jitter = [0, FRAME, 2 * FRAME, FRAME, 0] * 20  # late frames, then a catch-up to nothing
    assert all(run(catchup, jitter))
    assert catchup.dropped == 0


def test_a_lasting_wait_is_shed_by_its_low_point_then_frames_flow_again():
    catchup = CatchUp(window=10 * FRAME, limit=50 * FRAME)
    # a stall left 3 to 5 frames queued for a whole window: the low point, 3 frames, goes
    assert all(run(catchup, [3 * FRAME, 5 * FRAME, 4 * FRAME] * 3 + [3 * FRAME]))
    assert run(catchup, [3 * FRAME] * 4) == [False, False, False, True]
    assert catchup.dropped == 3 * FRAME


def test_a_lasting_wait_is_rounded_to_whole_frames():
    catchup = CatchUp(window=2 * FRAME, limit=50 * FRAME)
    assert run(catchup, [FRAME // 2, FRAME // 2, FRAME // 2, 0, 0]) == [
        True,
        True,
        False,
        True,
        True,
    ]
    assert catchup.dropped == FRAME
    assert all(run(catchup, [FRAME // 3] * 100))  # under half a frame: dropping would starve


def test_frames_beyond_the_limit_are_dropped_at_once():
    catchup = CatchUp(window=0, limit=4 * FRAME)
    assert run(catchup, [0, 2 * FRAME, 3 * FRAME, 4 * FRAME, 3 * FRAME]) == [
        True,
        True,
        True,
        False,
        True,
    ]
    assert catchup.dropped == FRAME


def test_window_zero_never_sheds_a_wait_under_the_limit():
    catchup = CatchUp(window=0, limit=50 * FRAME)
    assert all(run(catchup, [10 * FRAME] * 1000))
