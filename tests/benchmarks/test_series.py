"""The generator's per-bot series: room made once, so appends never reallocate in step."""

from benchmarks.load import Series


def test_a_series_holds_what_was_appended_and_only_that():
    series = Series(room=4)
    room = series.data.buffer_info()[0]
    for value in (0.5, 1.5, 2.5):
        series.append(value)
    assert len(series) == 3 and series[1] == 1.5
    assert list(series) == [0.5, 1.5, 2.5] and min(series) == 0.5  # not the room's zeros
    assert series.values().tolist() == [0.5, 1.5, 2.5]
    series.append(3.5)
    assert series.data.buffer_info()[0] == room  # within its room: the same memory


def test_past_its_room_a_series_doubles_and_keeps_its_values():
    series = Series(room=2)
    for value in range(5):
        series.append(float(value))
    assert len(series.data) == 8 and series.values().tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
