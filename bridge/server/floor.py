"""Who has the floor: a session's speech events through the turn and interruption policies,
acted on its playout and told to its responders and control clients.

Under the adaptive policy the bot's speech pauses at the user's first voice; the pause
resumes (a backchannel, a cough) or is committed as a barge-in (bridge.audio.interruption);
speech heard while deciding joins the turns only once committed. Under the fixed policy
(the old one) every speech segment is a turn and its start interrupts the bot at once.
While the roster says only the bot itself speaks, speech is taken for the bot's own voice:
it pauses nothing and is held until a person's entry starts speaking (then it is a barge-in
and joins the turns) or it ends (then it is dropped).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from bridge.audio.interruption import Decision, InterruptionPolicy
from bridge.audio.turns import TurnContinued, TurnEnded, TurnEvent, TurnPolicy, TurnStarted
from bridge.audio.vad import SpeechEvent, SpeechOnset, SpeechStarted, VoiceActivityDetector
from bridge.config import BridgeConfig
from bridge.responder import Responder, SessionInfo
from bridge.server.playout import Playout

log = logging.getLogger(__name__)

TurnPolicyName = Literal["fixed", "adaptive"]
HOOKS: dict[type, str] = {
    TurnStarted: "turn_start",
    TurnEnded: "turn_end",
    TurnContinued: "turn_continued",
}


@dataclass(frozen=True)
class FloorSettings:
    """How a session takes turns: the policy, and its responders' combined interruptibility."""

    policy: TurnPolicyName
    min_delay_ms: float
    initial_delay_ms: float
    max_delay_ms: float
    continue_ms: float
    quiet_ms: float  # a paused bot resumes once the user's voice was quiet this long
    barge_in: bool  # the user's speech may interrupt the bot at all
    interruptible: bool  # every responder may be interrupted
    min_interruption_ms: float  # the longest any responder asks for
    resume_timeout_s: float  # the longest any responder allows

    @property
    def pauses(self) -> bool:
        """The user's voice may pause the bot (so its own echo must not): adaptive, barge-in
        on, every responder interruptible. A live loopback never is: no guard, no pause."""
        return self.policy == "adaptive" and self.barge_in and self.interruptible


def floor_settings(config: BridgeConfig, responders: list[Responder]) -> FloorSettings:
    """The session's settings: the config's, and the strictest of its responders'."""
    return FloorSettings(
        policy=config.turn_policy,
        min_delay_ms=config.turn_min_delay_ms,
        initial_delay_ms=config.turn_initial_delay_ms,
        max_delay_ms=config.turn_max_delay_ms,
        continue_ms=config.turn_continue_ms,
        quiet_ms=config.interruption_quiet_ms,
        barge_in=config.barge_in,
        interruptible=all(r.interruptible for r in responders),
        min_interruption_ms=max((r.min_interruption_ms for r in responders), default=500.0),
        resume_timeout_s=max((r.resume_timeout_s for r in responders), default=2.0),
    )


TickHook = Callable[[], None]


class Floor:
    """Feed it every speech event (hear) and, while it asks for them, ticks once per chunk;
    it pauses, resumes and interrupts the playout and publishes turns. `interrupt` is the
    session's barge-in. `attach(set_tick)` names where its tick goes (the pipeline's hook):
    it is given `tick` while a pause or a turn's end is to be decided, None otherwise."""

    def __init__(
        self,
        settings: FloorSettings,
        vad: VoiceActivityDetector,
        playout: Playout,
        info: SessionInfo,
        offer_all: Callable[..., None],
        publish: Callable[..., Any],
        interrupt: Callable[[str], object],
        only_self_speaking: Callable[[], bool] = lambda: False,
    ) -> None:
        self.settings = settings
        fixed = settings.policy == "fixed"
        self.turns = (
            TurnPolicy(0, 0, 0, adaptive=False)
            if fixed
            else TurnPolicy(
                settings.min_delay_ms,
                settings.max_delay_ms,
                settings.continue_ms,
                initial_delay_ms=settings.initial_delay_ms,
            )
        )
        self.interruption = InterruptionPolicy(
            settings.min_interruption_ms, settings.resume_timeout_s * 1000, settings.quiet_ms
        )
        self._may_interrupt = settings.barge_in and settings.interruptible
        self._pauses = settings.pauses
        self._vad = vad
        self._playout = playout
        self._info = info
        self._offer_all = offer_all
        self._publish = publish
        self._interrupt = interrupt
        self._only_self = only_self_speaking
        self._deferred = False  # speech held while the roster said only the bot spoke
        self._held: SpeechStarted | None = None  # speech heard while deciding on a pause
        self._held_stop: float | None = None
        self._discarding = False  # the VAD segment of a false interruption: not a turn
        self.turns_started = 0
        self.turns_continued = 0
        self.false_interruptions = 0  # pauses resumed
        self._set_tick: Callable[[TickHook | None], None] = _ignore
        self.ticking = False  # a pause or a turn's end is to be decided on stream time

    def attach(self, set_tick: Callable[[TickHook | None], None]) -> None:
        """Where the floor's tick goes: set_tick(self.tick) while the floor has something to
        decide on stream time, set_tick(None) while it has not (a tick would do nothing)."""
        self._set_tick = set_tick
        set_tick(self.tick if self.ticking else None)

    def release(self) -> None:
        """Its session has ended: forget the session's callbacks (they made a cycle)."""
        self._offer_all = self._publish = self._interrupt = self._set_tick = _ignore

    def _retick(self) -> None:
        ticking = self.interruption.paused or self.turns.awaiting_end
        if ticking is not self.ticking:
            self.ticking = ticking
            self._set_tick(self.tick if ticking else None)

    def hear(self, event: SpeechEvent) -> None:
        """One event of the VAD, in stream order."""
        if isinstance(event, SpeechOnset):
            if self._pauses and self._playout.speaking and not self._only_self():
                self._pause(event.at_ms)
        elif isinstance(event, SpeechStarted):
            self._info.user_speaking = True
            self._offer_all("speech_start", event)
            self._publish("speech_start", at_ms=event.at_ms)
            self._started(event)
        else:
            self._info.user_speaking = False
            self._offer_all("speech_stop", event)
            self._publish("speech_stop", at_ms=event.at_ms, duration_ms=event.duration_ms)
            self._stopped(max(event.at_ms, self._vad.last_voiced_ms))
        self._retick()

    def tick(self) -> None:
        """Stream time moved on (a chunk was heard): decide pauses, end turns."""
        now = self._vad.position_ms
        if self.interruption.paused:
            if not self._playout.paused:  # interrupted meanwhile (a command): nothing to decide
                self.interruption.reset()
                self._release_held()
            else:
                decision = self.interruption.update(
                    now, self._vad.speaking, self._vad.last_voiced_ms
                )
                if decision is Decision.COMMIT:
                    held = self._held
                    continued = held is not None and self.turns.continues(held.at_ms)
                    self._interrupt("turn continued" if continued else "barge-in")
                    self._release_held()
                elif decision is Decision.RESUME:
                    self._resume(now)
        ended = self.turns.tick(now, self._vad.onset_pending)
        if ended is not None:
            self._tell(ended)
        self._retick()

    def person_speaks(self) -> None:
        """The roster says a person (not the bot) started speaking: speech held as the bot's
        own voice was theirs."""
        if self._deferred and self._vad.speaking:
            self._deferred = False
            if self._may_interrupt and self._playout.speaking:
                self._interrupt("barge-in")
            self._release_held()
            self._retick()

    def _started(self, event: SpeechStarted) -> None:
        if not self.interruption.paused and self._only_self():
            self._deferred = True
            self._held, self._held_stop = event, None
            return
        if self.interruption.paused:  # decided like any interruption, a continuation too:
            self._held, self._held_stop = event, None  # a backchannel withdraws no reply
            return
        if self._pauses and self._playout.speaking:
            self._pause(event.at_ms)  # speech without an onset first (a masked run, say)
            self._held, self._held_stop = event, None
            return
        if self._may_interrupt and not self._pauses and self._playout.speaking:
            self._interrupt("barge-in")  # the fixed policy
        self._turn_started(event)

    def _stopped(self, end_ms: float) -> None:
        if self._deferred:  # the bot's own voice, no person named: not a turn
            self._deferred = False
            self._held = self._held_stop = None
        elif self._held is not None:
            self._held_stop = end_ms
        elif self._discarding:
            self._discarding = False
        else:
            self.turns.speech_stopped(end_ms)

    def _turn_started(self, event: SpeechStarted) -> None:
        turn = self.turns.speech_started(event.at_ms)
        if turn is None:
            return
        self._tell(turn)
        withdraw = isinstance(turn, TurnContinued) and self.settings.interruptible
        if withdraw and self._playout.speaking:
            self._interrupt("turn continued")  # the reply just begun was to half a turn

    def _release_held(self) -> None:
        """The speech heard while paused is the user's: it joins the turns."""
        held, stop = self._held, self._held_stop
        self._held = self._held_stop = None
        if held is not None:
            self._turn_started(held)
            if stop is not None:
                self.turns.speech_stopped(stop)

    def _pause(self, at_ms: float) -> None:
        if self.interruption.onset(at_ms, self._vad.position_ms) is Decision.PAUSE:
            lead = self._playout.pause()
            self._publish("paused", at_ms=at_ms, lead_ms=round(lead * 1000, 1))

    def _resume(self, now_ms: float) -> None:
        self._playout.resume()
        self.false_interruptions += 1
        paused_ms = now_ms - self.interruption.paused_at_ms
        self._publish("resumed", at_ms=now_ms, paused_ms=paused_ms)
        if self._held is not None:
            # its segment is a backchannel or a noise: if the VAD still hears it, skip its stop
            self._discarding = self._held_stop is None and self._vad.speaking
        self._held = self._held_stop = None

    def _tell(self, turn: TurnEvent) -> None:
        self.turns_started += isinstance(turn, TurnStarted)
        self.turns_continued += isinstance(turn, TurnContinued)
        hook = HOOKS[type(turn)]
        self._offer_all(hook, turn)
        if isinstance(turn, TurnStarted):
            self._publish(hook, at_ms=turn.at_ms)
        elif isinstance(turn, TurnEnded):
            self._publish(
                hook,
                start_ms=turn.start_ms,
                end_ms=turn.end_ms,
                at_ms=turn.decided_ms,
                delay_ms=turn.delay_ms,
            )
        else:
            self._publish(hook, at_ms=turn.at_ms, start_ms=turn.start_ms, gap_ms=turn.gap_ms)


def _ignore(*args: object) -> None:
    """What a released floor calls in place of its session."""
