"""Speaker rosters as bots send them: who is who, who is the bot itself, who started and stopped.

The bot sends the whole roster each time anything changes. Ids are not keys on their own:
gen1 sends 0 for everyone and v2 may send null. A participant is keyed by its id while ids
are unique; once two names share an id, by name for the rest of the session; by deviceId
when it has neither. The bot's own entry (gen3 lists itself while it plays into the
meeting) is marked `is_self`: by its configured name, or learned as the participant whose
every turn started while the bridge was playing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.wire.protocol import SpeakerState

SELF_LEARNED_AFTER = 2  # turns, each started while the bridge played, none outside them


@dataclass
class Participant:
    """One person (or the bot itself) in the meeting, as the roster reports them."""

    key: str
    name: str
    id: int | None = None
    device_id: str | None = None
    speaking: bool = False
    is_self: bool = False
    extra: dict[str, object] = field(default_factory=dict)
    turns_while_bot_played: int = 0
    turns_otherwise: int = 0

    @property
    def is_speaking(self) -> bool:
        """As SpeakerState names it."""
        return self.speaking

    def as_dict(self) -> dict[str, object]:
        """The participant as an event field."""
        return {
            "key": self.key,
            "name": self.name,
            "id": self.id,
            "deviceId": self.device_id,
            "isSpeaking": self.speaking,
            "self": self.is_self,
            **self.extra,
        }


@dataclass(frozen=True)
class RosterChange:
    """What one roster update changed: who started and who stopped speaking."""

    started: list[Participant]
    stopped: list[Participant]
    became_self: Participant | None = None  # learned in this update


class Roster:
    """The meeting's participants, kept from the bot's whole-roster updates."""

    def __init__(self, bot_name: str | None = None) -> None:
        self.bot_name = _normal(bot_name) if bot_name else None
        self.participants: dict[str, Participant] = {}
        self._ids_unique = True

    def update(self, states: list[SpeakerState], bot_playing: bool) -> RosterChange:
        """Apply one whole roster; bot_playing: the bridge is sending speech right now."""
        if self._ids_unique and _ids_collide(states):
            self._ids_unique = False
            self.participants = {self._key(p.id, p.name, p.device_id): p for p in self._all()}
            for key, participant in self.participants.items():
                participant.key = key
        started, stopped, seen = [], [], set()
        for state in states:
            participant = self._participant(state)
            seen.add(participant.key)
            if state.is_speaking and not participant.speaking:
                started.append(participant)
            elif participant.speaking and not state.is_speaking:
                stopped.append(participant)
            participant.speaking = state.is_speaking
        for key, participant in self.participants.items():
            if key not in seen and participant.speaking:  # left the meeting mid-sentence
                participant.speaking = False
                stopped.append(participant)
        return RosterChange(started, stopped, self._learn_self(started, bot_playing))

    def speaking(self) -> list[Participant]:
        """Who is speaking now, the bot itself left out."""
        return [p for p in self.participants.values() if p.speaking and not p.is_self]

    def only_self_speaking(self) -> bool:
        """The roster says the bot itself speaks and nobody else does."""
        return not self.speaking() and any(
            p.speaking and p.is_self for p in self.participants.values()
        )

    def _all(self) -> list[Participant]:
        return list(self.participants.values())

    def _participant(self, state: SpeakerState) -> Participant:
        key = self._key(state.id, state.name, state.device_id)
        participant = self.participants.get(key)
        extra = dict(state.model_extra or {})
        if participant is None:
            participant = Participant(key, state.name, state.id, state.device_id)
            participant.is_self = self.bot_name is not None and _normal(state.name) == self.bot_name
            self.participants[key] = participant
        participant.name, participant.id, participant.extra = state.name, state.id, extra
        participant.device_id = state.device_id or participant.device_id
        return participant

    def _key(self, pid: int | None, name: str, device_id: str | None) -> str:
        if self._ids_unique and pid is not None:
            return f"id:{pid}"
        if name:
            return f"name:{name}"
        return f"device:{device_id}" if device_id else "unnamed"

    def _learn_self(self, started: list[Participant], bot_playing: bool) -> Participant | None:
        """Mark the participant whose turns all started while the bridge played, once."""
        if any(p.is_self for p in self.participants.values()):
            for participant in started:
                self._count_turn(participant, bot_playing)
            return None
        learned = None
        for participant in started:
            self._count_turn(participant, bot_playing)
            if (
                participant.turns_otherwise == 0
                and participant.turns_while_bot_played >= SELF_LEARNED_AFTER
            ):
                participant.is_self = True
                learned = participant
        return learned

    @staticmethod
    def _count_turn(participant: Participant, bot_playing: bool) -> None:
        if bot_playing:
            participant.turns_while_bot_played += 1
        else:
            participant.turns_otherwise += 1


def _ids_collide(states: list[SpeakerState]) -> bool:
    """Two different people share an id (gen1 sends 0 for everyone)."""
    names_by_id: dict[object, str] = {}
    for state in states:
        if state.id is None:
            continue
        other = names_by_id.setdefault(state.id, state.name)
        if other != state.name:
            return True
    return False


def _normal(name: str) -> str:
    return " ".join(name.split()).casefold()
