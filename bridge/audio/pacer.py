"""Output pacing on a monotonic deadline clock: real-time frames with a bounded lead, no bursts.

The bot plays whatever it receives at once and at real-time speed, with no feedback. The
pacer models the bot's playhead: `play_end` is the clock time at which everything sent so
far will have played. A frame may go out only while play_end stays within `lead` of now,
so an interruption is heard at most `lead` later, and lateness is never repaid in a burst.
A frame due within its slack goes at once: a live stream runs at its full lead, so each
frame is due just as it arrives, give or take jitter and rounding, and waiting that out
would cost a timer a frame for a lead that never exceeds `lead` + the slack. The slack is
EARLY_S, or half a frame when the pacer knows its frame: a busy loop's jitter at hundreds
of live sessions a core is several milliseconds, and a timer then fired for most frames.

The clock is compiled (bridge/audio/_pacer.c): a live stream asks it four or five times a
message, and each was a Python frame for a few float operations.
"""

from __future__ import annotations

from bridge.audio._pacer import Pacer

EARLY_S = 0.005


class OutputPacer(Pacer):
    """Decides when the next frame may be sent; counts underruns (gaps mid-stream).

    A Pacer: its calls are C's own. `lead_at(now)`: seconds sent but not yet played.
    `send_at(now, samples)`: the earliest time a frame may go (now if it may).
    `frames_due(now, frame)`: how many frames may go now in one message (at least one; ask
    once send_at says now); frames due within half a frame go with it, so a chunk arriving
    a few ms before the last one has played goes in one message, not one plus a frame each
    20 ms (the lead then runs over by at most half a frame). `allowed_at(frame)`: when the
    next frame is due: what the pacer holds a frame on purpose ends there. `sent(now,
    samples)`: account a frame; a gap since the last one is an underrun mid-stream.
    `pause(now)`: send nothing until resumed (the run then starts afresh, not an underrun);
    returns the lead that still plays. `end_stream()`: the silence that follows is not an
    underrun. Attributes: `lead` and `slack` (seconds, settable), `play_end` (the clock time
    at which everything sent finishes playing), `underruns`, `pauses`, `samples_sent`.
    """

    def __init__(self, sample_rate: int, lead_ms: float, frame: int = 0) -> None:
        super().__init__(sample_rate, lead_ms, frame, EARLY_S)
