"""Pause, then decide: what to do with the bot's speech when the user makes a sound over it.

At the first voice (the VAD's onset) the bot's playout pauses, which is cheap to undo. The
interruption is committed once the voice, confirmed as speech by the VAD, has lasted
`min_interruption_ms`; it is a false one (a backchannel, a cough, a click) if the voice
goes quiet for `quiet_ms` before that, and the playout resumes where it paused. A pause
never lasts beyond `resume_timeout_ms`: then speech still going on commits, anything else
resumes. Times are stream milliseconds: no clock, exactly testable.
"""

from __future__ import annotations

from enum import Enum


class Decision(Enum):
    """What the playout should do now."""

    PAUSE = "pause"
    RESUME = "resume"
    COMMIT = "commit"  # the user takes the floor: drop what was to be said


class InterruptionPolicy:
    """Onsets and VAD state in, PAUSE / RESUME / COMMIT decisions out."""

    def __init__(
        self, min_interruption_ms: float, resume_timeout_ms: float, quiet_ms: float
    ) -> None:
        self.min_interruption_ms = min_interruption_ms
        self.resume_timeout_ms = resume_timeout_ms
        self.quiet_ms = quiet_ms
        self.onset_ms: float | None = None  # the voice that paused the playout
        self.paused_at_ms = 0.0

    @property
    def paused(self) -> bool:
        return self.onset_ms is not None

    def onset(self, at_ms: float, now_ms: float) -> Decision | None:
        """Voice began at at_ms over the bot's speech: PAUSE, unless already paused."""
        if self.onset_ms is not None:
            return None
        self.onset_ms, self.paused_at_ms = at_ms, now_ms
        return Decision.PAUSE

    def update(self, now_ms: float, speaking: bool, last_voiced_ms: float) -> Decision | None:
        """At stream time now_ms, with the VAD in speech or not and its last voiced frame's end:
        COMMIT, RESUME, or None (stay as is)."""
        onset = self.onset_ms
        if onset is None:
            return None
        if speaking and last_voiced_ms - onset >= self.min_interruption_ms:
            return self._decide(Decision.COMMIT)
        if now_ms - last_voiced_ms >= self.quiet_ms:
            return self._decide(Decision.RESUME)
        if now_ms - self.paused_at_ms >= self.resume_timeout_ms:
            return self._decide(Decision.COMMIT if speaking else Decision.RESUME)
        return None

    def reset(self) -> None:
        """The playout was interrupted otherwise (a command, a continued turn): nothing paused."""
        self.onset_ms = None

    def _decide(self, decision: Decision) -> Decision:
        self.onset_ms = None
        return decision
