"""Turns from speech segments: endpointing with a delay adapted to the speaker's pauses.

The VAD cuts speech at every pause; a turn is what a person says before they expect an
answer. A turn ends once the speaker has been quiet for the endpointing delay. Until a speaker's
pauses inside turns are known it is `initial_delay_ms`, long enough to wait out a pause of a
sentence; then it follows their recent pauses (a margin over the longer ones), no shorter
than `min_delay_ms` and no longer than `max_delay_ms`: a speaker known to pause briefly is
answered sooner, one who pauses long is waited for. While the VAD's start window holds voice that
may open a segment, the decision waits (up to the maximum delay): the speaker may be resuming.
A speaker who resumes within `continue_ms` of an endpoint continues the same turn (the reply
just begun is withdrawn by whoever acts on TurnContinued); the pause that caused it lengthens
the delay. Times are the session's stream milliseconds: no clock, exactly testable.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

PAUSES_KEPT = 8  # recent pauses inside turns the delay follows
PAUSE_QUANTILE = 0.8  # the share of those pauses the delay waits out
PAUSE_MARGIN = 1.2  # the delay is this much longer than that pause


@dataclass(frozen=True, slots=True)
class TurnStarted:
    """A turn began: its first speech started at `at_ms`."""

    at_ms: float


@dataclass(frozen=True, slots=True)
class TurnEnded:
    """A turn ended: speech from `start_ms` to `end_ms`, decided at `decided_ms`."""

    start_ms: float
    end_ms: float
    decided_ms: float
    delay_ms: float  # the endpointing delay it was decided with

    @property
    def latency_ms(self) -> float:
        """How long after the speaker stopped the turn was decided over."""
        return self.decided_ms - self.end_ms


@dataclass(frozen=True, slots=True)
class TurnContinued:
    """The speaker resumed at `at_ms`, `gap_ms` after the end of a turn decided over too soon:
    the turn that began at `start_ms` goes on (and will end again)."""

    at_ms: float
    start_ms: float
    gap_ms: float


TurnEvent = TurnStarted | TurnEnded | TurnContinued


class PauseModel:
    """The endpointing delay from a speaker's recent pauses inside turns, within its bounds;
    `initial_delay_ms` (default: the minimum) while none is known."""

    def __init__(
        self,
        min_delay_ms: float,
        max_delay_ms: float,
        adaptive: bool = True,
        initial_delay_ms: float | None = None,
    ) -> None:
        initial = min_delay_ms if initial_delay_ms is None else initial_delay_ms
        if not 0 <= min_delay_ms <= initial <= max_delay_ms:
            raise ValueError("need 0 <= min_delay_ms <= initial_delay_ms <= max_delay_ms")
        self.min_delay_ms = min_delay_ms
        self.max_delay_ms = max_delay_ms
        self.initial_delay_ms = initial
        self.adaptive = adaptive
        self._pauses: deque[float] = deque(maxlen=PAUSES_KEPT)
        self._delay_ms = min_delay_ms if not adaptive else initial

    def observe(self, pause_ms: float) -> None:
        """A pause inside a turn (or one that ended a turn the speaker then continued)."""
        self._pauses.append(pause_ms)
        if self.adaptive:
            ranked = sorted(self._pauses)
            typical = ranked[min(len(ranked) - 1, int(PAUSE_QUANTILE * len(ranked)))]
            self._delay_ms = min(self.max_delay_ms, max(self.min_delay_ms, PAUSE_MARGIN * typical))

    @property
    def delay_ms(self) -> float:
        """The current endpointing delay: PAUSE_MARGIN times the PAUSE_QUANTILE pause (asked
        on every chunk between speech and a turn's end, so kept, not sorted each time)."""
        return self._delay_ms


class TurnPolicy:
    """Speech starts and stops in, turn events out; tick() on every frame makes the endpoint.

    With min = max = continue = 0 and adaptive off, turns are the VAD's segments (the
    fixed-window policy).
    """

    def __init__(
        self,
        min_delay_ms: float,
        max_delay_ms: float,
        continue_ms: float,
        adaptive: bool = True,
        initial_delay_ms: float | None = None,
    ) -> None:
        self.pauses = PauseModel(min_delay_ms, max_delay_ms, adaptive, initial_delay_ms)
        self.continue_ms = continue_ms
        self._start: float | None = None  # the open turn's start
        self._speaking = False
        self._last_end = 0.0  # end of the open turn's latest speech
        self._ended: TurnEnded | None = None  # the last turn, while it may be continued

    @property
    def in_turn(self) -> bool:
        """A turn is open: the speaker speaks or pauses within it."""
        return self._start is not None

    @property
    def awaiting_end(self) -> bool:
        """A turn is open and its speaker quiet: tick() may end it."""
        return self._start is not None and not self._speaking

    def continues(self, at_ms: float) -> bool:
        """Whether speech starting at at_ms would continue the last turn (not start one)."""
        ended = self._ended
        return (
            self._start is None
            and ended is not None
            and (at_ms - ended.decided_ms <= self.continue_ms)
        )

    def speech_started(self, at_ms: float) -> TurnStarted | TurnContinued | None:
        """Speech began at at_ms: a turn starts, goes on after a pause (None), or continues."""
        self._speaking = True
        if self._start is not None:
            self.pauses.observe(at_ms - self._last_end)
            return None
        ended, continues = self._ended, self.continues(at_ms)
        self._ended = None
        if ended is not None and continues:
            self._start = ended.start_ms
            gap = at_ms - ended.end_ms
            self.pauses.observe(gap)
            return TurnContinued(at_ms, ended.start_ms, gap)
        self._start = at_ms
        return TurnStarted(at_ms)

    def speech_stopped(self, at_ms: float) -> None:
        """Speech ended at at_ms (the last voice heard, not when the VAD said so)."""
        self._speaking = False
        self._last_end = max(at_ms, self._start or at_ms)

    def tick(self, now_ms: float, voice_pending: bool = False) -> TurnEnded | None:
        """Stream time now_ms; voice_pending: voice is heard that may yet start speech."""
        if self._start is None or self._speaking:
            return None
        quiet = now_ms - self._last_end
        delay = self.pauses.delay_ms
        if quiet < delay or (voice_pending and quiet < self.pauses.max_delay_ms):
            return None
        ended = TurnEnded(self._start, self._last_end, now_ms, delay)
        self._start, self._ended = None, ended
        return ended
