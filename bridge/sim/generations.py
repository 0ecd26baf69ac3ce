"""The Meeting BaaS bot generations in the field, as the simulator and the load generator play them.

- gen1 (2025, browser extension): 256-sample messages (512 B), a hello without
  `sample_rate` (the URL's `?rate` says it), `id: 0` for every participant, ms timestamps,
  never reconnects, stops with a close frame without a code (1005).
- gen3 (today's bot): 10 ms messages, the hello names its rate, numeric ids plus `deviceId`,
  lists itself in the roster while it plays, reconnects to the same URL after any close
  (backoff 1, 2, 4 ... 60 s), stops by dropping the connection (no close frame: 1006).
- v2 (the v2 API docs): fixed 100 ms chunks, the hello names its rate, `id: null`, timestamps
  in seconds with a fraction, reconnects as gen3 does, stops with a normal close.
- custom: the simulator's own knobs (`chunk_ms`), a gen1-style hello and unique ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Generation = Literal["custom", "gen1", "gen3", "v2"]
Stop = Literal["close", "close_without_code", "abort"]
MAX_BACKOFF_S = 60.0


@dataclass(frozen=True)
class BotProfile:
    """How one generation of the bot talks on the wire."""

    name: Generation
    frame_samples: int | None  # per message, whatever the rate (gen1); None: frame_ms
    frame_ms: float | None
    announces_rate: bool
    ids: Literal["unique", "zero", "null"]
    seconds_timestamps: bool
    device_ids: bool
    lists_self: bool
    reconnects: bool
    stop: Stop

    def samples_per_message(self, sample_rate: int, chunk_ms: float) -> int:
        """Samples in one binary message at sample_rate (chunk_ms for the custom profile)."""
        if self.frame_samples is not None:
            return self.frame_samples
        return round(sample_rate * (self.frame_ms or chunk_ms) / 1000)

    def hello(self, bot_id: str, sample_rate: int) -> dict[str, Any]:
        """The text frame sent first on the output socket, and after every reconnect."""
        hello: dict[str, Any] = {"protocol_version": 1, "bot_id": bot_id, "offset": 0.0}
        if self.announces_rate:
            hello["sample_rate"] = sample_rate
        return hello

    def roster(self, speaking: dict[str, bool], now_s: float) -> list[dict[str, Any]]:
        """The whole roster, as this generation writes it, for {name: is speaking}."""
        stamp: float = round(now_s, 3) if self.seconds_timestamps else int(now_s * 1000)
        entries = []
        for index, (name, is_speaking) in enumerate(speaking.items(), 1):
            pid = {"unique": index, "zero": 0, "null": None}[self.ids]
            entry: dict[str, Any] = {
                "name": name,
                "id": pid,
                "timestamp": stamp,
                "isSpeaking": is_speaking,
            }
            if self.device_ids:
                entry["deviceId"] = f"device-{index}"
            entries.append(entry)
        return entries

    @staticmethod
    def backoff_s(attempt: int) -> float:
        """Wait before reconnect attempt `attempt` (0-based): 1, 2, 4 ... 60 s."""
        return min(MAX_BACKOFF_S, 2.0**attempt)


PROFILES: dict[Generation, BotProfile] = {
    "custom": BotProfile(
        "custom", None, None, False, "unique", False, False, False, False, "close"
    ),
    "gen1": BotProfile(
        "gen1", 256, None, False, "zero", False, False, False, False, "close_without_code"
    ),
    "gen3": BotProfile("gen3", None, 10, True, "unique", False, True, True, True, "abort"),
    "v2": BotProfile("v2", None, 100, True, "null", True, False, False, True, "close"),
}
