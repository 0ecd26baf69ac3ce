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
MAX_MESSAGE_CHARS = 2000  # a longer message is cut: no client can make a line huge
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)}  # escapes in text lines
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


def clip(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """text cut to limit characters, saying how many were left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def escape_controls(text: str) -> str:
    """Control characters as \\xNN: a client's bytes cannot end a log line, forge another
    or drive the terminal that shows it."""
    return text.translate(_CONTROL)


class TextFormatter(logging.Formatter):
    """One line per record: the message cut to MAX_MESSAGE_CHARS, control characters
    escaped (a traceback after it keeps its lines)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(clip(record.message))
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, session, bot (and exc)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": clip(record.getMessage()),  # json.dumps escapes control characters
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
        formatter = TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(formatter)
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request; ours say more
