"""Rosters as the three bot generations send them: keys, the bot itself, who started and stopped."""

from bridge.wire.protocol import SpeakerState
from bridge.wire.roster import Roster


def states(*entries: tuple) -> list[SpeakerState]:
    """(name, id, speaking[, deviceId]) tuples as SpeakerStates."""
    out = []
    for name, pid, speaking, *device in entries:
        raw = {"name": name, "id": pid, "timestamp": 1732467000123, "isSpeaking": speaking}
        if device:
            raw["deviceId"] = device[0]
        out.append(SpeakerState.model_validate(raw))
    return out


def names(participants) -> list[str]:
    return sorted(p.name for p in participants)


def test_unique_ids_key_participants_and_changes_are_derived_from_whole_rosters():
    roster = Roster()
    change = roster.update(states(("Alice", 2, True), ("Bob", 3, False)), bot_playing=False)
    assert names(change.started) == ["Alice"] and change.stopped == []
    change = roster.update(states(("Alice", 2, False), ("Bob", 3, True)), bot_playing=False)
    assert names(change.started) == ["Bob"] and names(change.stopped) == ["Alice"]
    assert sorted(roster.participants) == ["id:2", "id:3"]
    assert names(roster.speaking()) == ["Bob"]


def test_gen1_id_zero_for_everyone_keeps_people_distinct_by_name():
    roster = Roster()
    roster.update(states(("Alice", 0, False)), bot_playing=False)  # alone, id 0 looks unique
    change = roster.update(states(("Alice", 0, True), ("Bob", 0, False)), bot_playing=False)
    assert names(change.started) == ["Alice"]
    assert sorted(roster.participants) == ["name:Alice", "name:Bob"]
    assert names(roster.speaking()) == ["Alice"]  # not "nobody speaking"
    change = roster.update(states(("Alice", 0, False), ("Bob", 0, True)), bot_playing=False)
    assert names(change.started) == ["Bob"] and names(change.stopped) == ["Alice"]


def test_null_ids_fall_back_to_name_then_device():
    roster = Roster()
    roster.update(states(("Ann", None, True, "d1"), ("", None, True, "d2")), bot_playing=False)
    assert sorted(roster.participants) == ["device:d2", "name:Ann"]
    assert len(roster.speaking()) == 2


def test_the_bots_name_marks_it_self_and_it_is_never_speaking():
    roster = Roster(bot_name="Speak Bridge")
    roster.update(states(("speak  bridge", 7, True), ("Carol", 8, False)), bot_playing=True)
    assert roster.participants["id:7"].is_self
    assert roster.speaking() == [] and roster.only_self_speaking()
    roster.update(states(("speak  bridge", 7, True), ("Carol", 8, True)), bot_playing=True)
    assert names(roster.speaking()) == ["Carol"] and not roster.only_self_speaking()


def test_self_is_learned_from_turns_that_start_only_while_the_bridge_plays():
    roster = Roster()
    for playing in (True, True):
        roster.update(states(("Dana", 1, False), ("Bot", 9, False)), bot_playing=playing)
        change = roster.update(states(("Dana", 1, False), ("Bot", 9, True)), bot_playing=playing)
    assert change.became_self is not None and change.became_self.name == "Bot"
    assert roster.participants["id:9"].is_self


def test_someone_who_also_speaks_while_the_bridge_is_silent_is_not_self():
    roster = Roster()
    for playing in (False, True, True, True):
        roster.update(states(("Eve", 1, False)), bot_playing=playing)
        change = roster.update(states(("Eve", 1, True)), bot_playing=playing)
        assert change.became_self is None
    assert not roster.participants["id:1"].is_self


def test_a_participant_who_leaves_while_speaking_stops():
    roster = Roster()
    roster.update(states(("Fay", 1, True), ("Gus", 2, False)), bot_playing=False)
    change = roster.update(states(("Gus", 2, False)), bot_playing=False)
    assert names(change.stopped) == ["Fay"] and roster.speaking() == []


def test_extra_fields_are_kept():
    roster = Roster()
    raw = {"name": "Hal", "id": 1, "timestamp": 1.5, "isSpeaking": True, "role": "host"}
    roster.update([SpeakerState.model_validate(raw)], bot_playing=False)
    assert roster.participants["id:1"].as_dict()["role"] == "host"
