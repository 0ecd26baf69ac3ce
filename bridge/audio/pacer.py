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
"""

from __future__ import annotations

EARLY_S = 0.005


class OutputPacer:
    """Decides when the next frame may be sent; counts underruns (gaps mid-stream)."""

    def __init__(self, sample_rate: int, lead_ms: float, frame: int = 0) -> None:
        if lead_ms <= 0:
            raise ValueError("lead_ms must be positive")
        self.sample_rate = sample_rate
        self.lead = lead_ms / 1000
        self.slack = max(EARLY_S, frame / sample_rate / 2)  # how early a due frame may go
        self._origin = 0.0  # clock time at which the current run of audio began playing
        self._samples = 0  # samples sent since origin: integer, so the clock never drifts
        self.play_end = 0.0  # clock time at which the audio sent so far finishes playing
        self._streaming = False  # a stream is open: running dry now is an underrun
        self.underruns = 0
        self.pauses = 0
        self.samples_sent = 0

    def lead_at(self, now: float) -> float:
        """Seconds of audio sent but not yet played at `now` (never negative)."""
        return max(0.0, self.play_end - now)

    def send_at(self, now: float, samples: int) -> float:
        """Earliest clock time at which a frame of `samples` may be sent (now if it may)."""
        due = max(self.play_end, now) + samples / self.sample_rate - self.lead
        return now if due <= now + self.slack else due

    def frames_due(self, now: float, frame: int) -> int:
        """How many frames of `frame` samples may go at `now` in one message (at least one:
        call it once send_at says now). Frames due within half a frame go with it: a chunk
        arriving a few ms before the last one has played is answered in one message, not
        one plus a frame each 20 ms (the lead then runs over by at most half a frame)."""
        slack = max(self.slack, frame / self.sample_rate / 2)
        room = now + slack + self.lead - max(self.play_end, now)
        return max(1, int(room * self.sample_rate) // frame)

    def allowed_at(self, frame: int) -> float:
        """Clock time at which the next frame is due (send_at's deadline): what the pacer
        holds a frame on purpose ends there (a time in the past while the lead has room)."""
        return self.play_end + frame / self.sample_rate - self.lead

    def sent(self, now: float, samples: int) -> None:
        """Account a frame sent at `now`; a gap since the last one is an underrun mid-stream."""
        if self.play_end < now:
            if self._streaming and self._samples:
                self.underruns += 1
            self._origin, self._samples = now, 0
        self._samples += samples
        self.play_end = self._origin + self._samples / self.sample_rate  # from integers: exact
        self.samples_sent += samples
        self._streaming = True

    def pause(self, now: float) -> float:
        """Send nothing more until resumed (then the run starts afresh, not an underrun);
        returns the seconds of lead already sent that still play."""
        self._streaming = False
        self.pauses += 1
        return self.lead_at(now)

    def end_stream(self) -> None:
        """Nothing more is coming for now: the silence that follows is not an underrun."""
        self._streaming = False
