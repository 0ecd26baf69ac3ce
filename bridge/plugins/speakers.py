"""Who spoke when: the bot's speaker events laid on the session's timeline."""

from __future__ import annotations


class SpeakerTurns:
    """Who spoke when, on the session's timeline, from the bot's speaker events."""

    def __init__(self) -> None:
        self._turns: dict[str, list[list[float]]] = {}  # name -> [[start_ms, end_ms], ...]

    def update(self, at_ms: float, speakers: list[dict]) -> None:
        for speaker in speakers:
            if speaker.get("self"):
                continue  # the bot's own entry: it never is the speaker of a segment
            turns = self._turns.setdefault(speaker["name"], [])
            open_turn = bool(turns) and turns[-1][1] == float("inf")
            if speaker["isSpeaking"] and not open_turn:
                turns.append([at_ms, float("inf")])
            elif not speaker["isSpeaking"] and open_turn:
                turns[-1][1] = at_ms

    def main_speaker(self, start_ms: float, end_ms: float) -> str | None:
        """The participant who spoke longest within [start_ms, end_ms], else the last before."""
        best, best_overlap, last, last_start = None, 0.0, None, -1.0
        for name, turns in self._turns.items():
            overlap = sum(max(0.0, min(end_ms, e) - max(start_ms, s)) for s, e in turns)
            if overlap > best_overlap:
                best, best_overlap = name, overlap
            for s, _ in turns:
                if last_start < s <= start_ms:
                    last, last_start = name, s
        return best or last
