"""Scheduled speaking bots: `speakbridge schedule MEETING_URL --at TIME`, list and cancel.

v2 creates them with `POST /v2/bots/scheduled` and `join_at`; v1 with `POST /bots` and
`start_time` (Unix seconds, as the v1 OpenAPI schema says) and `reserved`. The session's
streaming URLs are signed to be valid for token_ttl_s from the join time, not from now.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

MAX_AHEAD_S = 90 * 86400  # the API refuses join times further ahead
LEEWAY_S = 60.0  # and join times more than this far in the past
_RELATIVE = re.compile(r"^\+(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def join_time(text: str, now: float | None = None) -> float:
    """Unix seconds of `+10m`, `+1h30m`, `+2d`, `+45s`, or an ISO-8601 time (a time without
    an offset is UTC); ValueError if unreadable, past, or over 90 days ahead."""
    now = time.time() if now is None else now
    text = text.strip()
    if match := _RELATIVE.match(text):
        if not any(match.groups()):
            raise ValueError(f"--at {text!r}: give an amount, e.g. +10m")
        days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
        at = now + ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    else:
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"--at {text!r}: give an ISO time (2026-05-01T10:00:00Z) or +10m"
            ) from None
        at = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    if at < now - LEEWAY_S:
        raise ValueError(f"--at {text!r} is in the past")
    if at > now + MAX_AHEAD_S:
        raise ValueError(f"--at {text!r} is more than 90 days ahead")
    return at


def describe(bot: dict) -> str:
    """One line for a scheduled bot of GET /v2/bots/scheduled."""
    return (
        f"{bot.get('bot_id', '?')}  {bot.get('join_at', '?')}  {bot.get('status', '?')}  "
        f"{bot.get('bot_name', '')}  {bot.get('meeting_url', '')}"
    )
