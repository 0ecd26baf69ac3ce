"""The load generator's model of the bot's player: a device buffer, plus what the server
sent ahead of real time."""

import pytest

from benchmarks.load import DeviceBufferPlayer

RATE = 24000
FRAME = 480  # 20 ms


def play_at(player: DeviceBufferPlayer, times: list[float]) -> list[bool]:
    return [player.play(t, FRAME) for t in times]


def test_the_first_frame_fills_the_device_buffer_then_frames_on_time_never_run_dry():
    player = DeviceBufferPlayer(RATE, buffer_s=0.040)
    assert play_at(player, [1.0 + 0.020 * k for k in range(50)]) == [True] + [False] * 49
    assert player.play_end - (1.0 + 0.020 * 49) == pytest.approx(0.060)  # buffer + frame in hand


def test_a_frame_later_than_the_buffer_is_a_gap_and_the_buffer_refills():
    player = DeviceBufferPlayer(RATE, buffer_s=0.040)
    play_at(player, [1.000, 1.020])
    assert play_at(player, [1.020 + 0.065]) == [True]  # 65 ms late: 40 + 20 queued, then dry
    assert play_at(player, [1.105, 1.125]) == [False, False]


def test_what_the_server_sent_ahead_adds_to_the_margin():
    with_prebuffer, without = DeviceBufferPlayer(RATE), DeviceBufferPlayer(RATE)
    play_at(with_prebuffer, [1.000, 1.000, 1.020])  # a 40 ms prebuffer goes as two frames at once
    play_at(without, [1.000, 1.020])
    stall = [1.020 + 0.070]  # then one echo comes 70 ms late
    assert play_at(with_prebuffer, stall) == [False]
    assert play_at(without, stall) == [True]
