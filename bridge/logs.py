"""Logging setup: human-readable lines, or one JSON object a line with the session on each.

The server puts a session's context in a contextvar when a socket joins it; tasks the
session starts inherit it, so every line logged on a session's behalf carries its
session id and, once the bot said hello, its bot id.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import Any, Literal

LogFormat = Literal["text", "json"]
session_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "speakbridge_session", default=None
)


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """ "1 session", "2 sessions": a count in a log line, in words that agree with it."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


class SessionFilter(logging.Filter):
    """Adds `session` and `bot` attributes to each record (None outside a session)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = session_context.get()
        info = context.get("info") if context else None
        record.session = context["session"] if context else None
        record.bot = getattr(info, "bot_id", None)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, session, bot (and exc)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "session": getattr(record, "session", None),
            "bot": getattr(record, "bot", None),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def setup_logging(level: str, fmt: LogFormat) -> None:
    """Configure the root logger once, for the command line."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(SessionFilter())
    if fmt == "json":
        formatter: logging.Formatter = JsonFormatter()
        formatter.converter = time.gmtime  # type: ignore[method-assign]
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(formatter)
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request; ours say more
