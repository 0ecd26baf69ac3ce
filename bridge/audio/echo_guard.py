"""Self-echo guard: meeting audio that is the bot's own speech coming back is no user speech.

A meeting may mix the bot's output back into what it sends (a participant's open speakers,
the bot's own mic wired to the call's monitor). The guard keeps the energy envelope of
what the bot played, frame by frame on the input's timeline, and finds the echo path: the
delay (among the plausible ones) at which the input's log-energy envelope over the last
`window_ms` correlates best with the output's, if above `min_correlation` with enough
active frames, and the path's energy gain there. A frame is the bot's echo when its energy
is no more than the echo the path predicts (3 dB of slack): a user talking over the echo,
at least as loud as it, is heard. The path is re-estimated every few frames while the bot
speaks (a few small numpy products) and nothing is done while it has been silent longer
than the longest delay. The first frames of the first echo pass before a path is known:
they may pause the bot's speech, never interrupt it (the echo is masked long before a
barge-in is committed).
"""

from __future__ import annotations

import math

import numpy as np

FLOOR_DB = -10.0  # log10 energy of digital silence, so quiet frames compare as equals
SLACK = 2.0  # a frame may carry this much more energy than the predicted echo (3 dB)
MIN_ACTIVE = 8  # frames of the window 10 dB above its quietest before a path is estimated
MAX_GAIN = 2.0  # an echo path amplifies by no more than this (+3 dB)
MIN_SPREAD = 0.15  # log10 energy's spread over the window (1.5 dB): speech varies, tones do not
KEEP_MARGIN = 0.1  # how much better another delay must correlate to replace the path found
ESTIMATE_EVERY = 4  # frames between estimates of the path


class EchoGuard:
    """Output frames in (played), input frames judged (is_echo); both on stream time in ms."""

    def __init__(
        self,
        frame_ms: float,
        min_delay_ms: float = 150.0,
        max_delay_ms: float = 600.0,
        window_ms: float = 1000.0,
        min_correlation: float = 0.9,
    ) -> None:
        if not 0 <= min_delay_ms <= max_delay_ms:
            raise ValueError("need 0 <= min_delay_ms <= max_delay_ms")
        self.frame_ms = frame_ms
        self.min_lag = int(min_delay_ms // frame_ms)
        self.max_lag = math.ceil(max_delay_ms / frame_ms)
        self.window = max(MIN_ACTIVE, int(window_ms // frame_ms))
        self.min_correlation = min_correlation
        span = self.max_lag + self.window + 2
        self._out = np.zeros(span)  # output energy by frame slot, a ring indexed slot % span
        self._out_slot = -1  # the newest slot written
        self._in = np.zeros(self.window)  # the input's recent energies, oldest first
        self._last_played_ms = -math.inf
        self._frames = 0
        self.lag: int | None = None  # the echo path's delay in frames, once found
        self.gain = 0.0  # its energy gain
        self.frames_masked = 0

    def played(self, frame: np.ndarray, at_ms: float) -> None:
        """A frame of the bot's speech that plays at stream time at_ms (its start)."""
        energy = float(np.dot(frame.astype(np.float32), frame)) / max(1, len(frame))
        slot = int(at_ms // self.frame_ms)
        span = len(self._out)
        if slot > self._out_slot:
            for old in range(max(self._out_slot + 1, slot - span + 1), slot + 1):
                self._out[old % span] = 0.0  # slots skipped are silence
            self._out_slot = slot
        elif slot <= self._out_slot - span:
            return  # older than anything kept
        self._out[slot % span] += energy
        self._last_played_ms = max(self._last_played_ms, at_ms)

    def is_echo(self, frame: np.ndarray, at_ms: float) -> bool:
        """Judge an input frame starting at stream time at_ms (frames in order, none skipped)."""
        energy = float(np.dot(frame.astype(np.float32), frame)) / max(1, len(frame))
        self._in[:-1] = self._in[1:]
        self._in[-1] = energy
        self._frames += 1
        if at_ms - self._last_played_ms > (self.max_lag + self.window) * self.frame_ms:
            return False
        slot = int(at_ms // self.frame_ms)
        if self._frames % ESTIMATE_EVERY == 0:
            self._estimate(slot)
        if self.lag is None:
            return False
        predicted = self.gain * (self._out_at(slot - self.lag) + self._out_at(slot - self.lag - 1))
        masked = energy <= SLACK * (predicted + self._in.min())  # the room's noise adds
        self.frames_masked += masked
        return masked

    def _out_at(self, slot: int) -> float:
        """The output energy of one slot (0 for one not kept or not yet played)."""
        kept = self._out_slot - len(self._out) < slot <= self._out_slot
        return float(self._out[slot % len(self._out)]) if kept else 0.0

    def _paired(self, slot: int, lags: np.ndarray) -> np.ndarray:
        """out[i, j]: output energy lags[i] frames before input frame j of the window, summed
        with the frame before it (a delay between two slots splits the echo's energy)."""
        span, w = len(self._out), self.window
        lags = np.concatenate((lags, lags[-1:] + 1))
        slots = (slot - w + 1 + np.arange(w))[None, :] - lags[:, None]
        valid = (slots <= self._out_slot) & (slots > self._out_slot - span)
        out = np.where(valid, self._out[slots % span], 0.0)
        return out[:-1] + out[1:] if len(lags) > 2 else (out[:1] + out[1:])

    def _estimate(self, slot: int) -> None:
        log_in = np.log10(self._in + 1e-10).clip(FLOOR_DB)
        active_in = log_in > log_in.min() + 1
        if not active_in[-1] or np.count_nonzero(active_in) < MIN_ACTIVE:
            return  # no voice now, or too little in the window for its shape to tell
        out = self._paired(slot, np.arange(self.min_lag, self.max_lag + 1))
        log_out = np.log10(out + 1e-10).clip(FLOOR_DB)
        # the shapes are compared where both sound: a step from silence (any onset against any
        # other) and a steady tone say nothing of a path
        both = active_in[None, :] & (log_out > log_out.min(axis=1, keepdims=True) + 1)
        n = both.sum(axis=1)
        x = np.where(both, log_in[None, :], 0.0)
        y = np.where(both, log_out, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            cov = (x * y).sum(axis=1) - x.sum(axis=1) * y.sum(axis=1) / n
            var_x = (x * x).sum(axis=1) - x.sum(axis=1) ** 2 / n
            var_y = (y * y).sum(axis=1) - y.sum(axis=1) ** 2 / n
            correlation = cov / np.sqrt(var_x * var_y)
        shaped = (n >= MIN_ACTIVE) & (var_x > 0) & (var_y > MIN_SPREAD**2 * n)  # speech-like
        correlation = np.where(shaped, correlation, 0.0)
        best = int(np.argmax(correlation))
        if self.lag is not None:  # a path found stays unless another correlates much better
            current = self.lag - self.min_lag
            if correlation[current] >= correlation[best] - KEEP_MARGIN:
                best = current
        echo = out[best]
        gain = float(self._in @ echo) / max(1.0, float(echo @ echo))
        if correlation[best] >= self.min_correlation and gain <= MAX_GAIN:
            self.lag, self.gain = self.min_lag + best, gain  # not louder than the bot itself
