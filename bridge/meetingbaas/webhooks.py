"""Meeting BaaS webhook deliveries: who sent them (verification), what they say (notices), and
whether they were seen before (a bounded window of delivery keys). Sans-I/O.

Three senders, told apart by their headers:
- v2 account webhooks, through SVIX: `svix-id`, `svix-timestamp`, `svix-signature` (or the
  Standard Webhooks names `webhook-*`); the signature is `v1,` + base64 HMAC-SHA256 over
  `{id}.{timestamp}.{raw body}` keyed by base64-decode of the `whsec_` secret, several
  space-separated during a rotation; the timestamp must be within 5 minutes of now.
- v2 per-bot callbacks: the configured secret verbatim in `x-mb-secret`.
- v1: the account's API key in `x-meeting-baas-api-key`.
Where the docs' prose and the OpenAPI schema disagree (extra inside or beside data, `mp4` or
`video`, `start`/`end` or `start_time`/`end_time`), both forms are read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

SVIX_TOLERANCE_S = 300.0
SECRET_PREFIX = "whsec_"
TERMINAL_STATUS = "call_ended"
FINAL_V1 = {"complete": "bot.completed", "failed": "bot.failed"}
ARTIFACT_KEYS = (
    "video",
    "mp4",
    "audio",
    "diarization",
    "raw_transcription",
    "transcription",
    "chat_messages",
)
Scheme = Literal["svix", "callback", "v1"]


class Unauthorized(Exception):
    """A delivery that is unsigned, forged or stale: answer 401 and never process it."""


class BadDelivery(ValueError):
    """A verified delivery whose body is not a Meeting BaaS event."""


@dataclass(frozen=True)
class Verifier:
    """The secrets deliveries are checked against; a scheme with no secret is refused."""

    svix_secrets: tuple[bytes, ...] = ()  # HMAC keys: several while rotating on our side
    callback_secret: str | None = None
    api_key: str | None = None
    tolerance_s: float = SVIX_TOLERANCE_S

    @classmethod
    def from_settings(cls, svix: str | None, callback: str | None, api_key: str | None) -> Verifier:
        """svix: one `whsec_` secret, or several comma-separated (all are accepted)."""
        keys = tuple(svix_key(s) for s in (svix or "").split(",") if s.strip())
        return cls(keys, callback or None, api_key or None)

    @property
    def enabled(self) -> bool:
        return bool(self.svix_secrets or self.callback_secret or self.api_key)

    def verify(self, headers: dict[str, str], body: bytes, now: float) -> Scheme:
        """Which sender signed this delivery (headers lower-cased); Unauthorized if none did."""
        if any(f"{p}-signature" in headers for p in ("svix", "webhook")):
            if not self.svix_secrets:
                raise Unauthorized("SVIX-signed, but no --webhook-svix-secret is set")
            verify_svix(self.svix_secrets, headers, body, now, self.tolerance_s)
            return "svix"
        if "x-mb-secret" in headers:
            if self.callback_secret is None:
                raise Unauthorized("x-mb-secret given, but no --webhook-callback-secret is set")
            if not _same(headers["x-mb-secret"], self.callback_secret):
                raise Unauthorized("wrong x-mb-secret")
            return "callback"
        if "x-meeting-baas-api-key" in headers:
            if self.api_key is None:
                raise Unauthorized("v1 delivery, but no API key is set to check it against")
            if not _same(headers["x-meeting-baas-api-key"], self.api_key):
                raise Unauthorized("wrong x-meeting-baas-api-key")
            return "v1"
        raise Unauthorized("unsigned (no svix-*, webhook-*, x-mb-secret or API key header)")


def svix_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret."""
    text = secret.strip().removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        raise ValueError("a SVIX secret is whsec_ followed by base64") from None
    if not key:
        raise ValueError("empty SVIX secret")
    return key


def svix_signature(key: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    """The `v1,<base64>` signature SVIX sends for this message."""
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify_svix(
    keys: tuple[bytes, ...], headers: dict[str, str], body: bytes, now: float, tolerance_s: float
) -> None:
    """Raise Unauthorized unless one signature matches one key and the timestamp is fresh."""
    msg_id, stamp, signatures = (
        headers.get(f"svix-{name}") or headers.get(f"webhook-{name}")
        for name in ("id", "timestamp", "signature")
    )
    if not (msg_id and stamp and signatures):
        raise Unauthorized("missing SVIX id, timestamp or signature header")
    try:
        sent = int(stamp)
    except ValueError:
        raise Unauthorized("bad SVIX timestamp") from None
    if abs(now - sent) > tolerance_s:
        raise Unauthorized(f"stale SVIX timestamp ({now - sent:+.0f} s from now)")
    given = [s.partition(",")[2] for s in signatures.split() if s.startswith("v1,")]
    for key in keys:
        expected = svix_signature(key, msg_id, stamp, body).partition(",")[2]
        if any(_same(candidate, expected) for candidate in given):
            return
    raise Unauthorized("no SVIX signature matches")


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


# What deliveries say


@dataclass(frozen=True)
class BotStatus:
    """bot.status_change: the bot's new state."""

    kind: ClassVar[str] = "bot.status_change"
    bot_id: str
    code: str
    created_at: str | None
    fields: dict[str, Any]  # start_time, error_message, error_type, attempt, max (as given)
    extra: dict[str, Any] | None
    event_id: str | None = None


@dataclass(frozen=True)
class BotFinal:
    """bot.completed or bot.failed (v1 complete, failed): the bot is done."""

    kind: Literal["bot.completed", "bot.failed"]
    bot_id: str
    data: dict[str, Any]  # the payload's data, `extra` left out
    extra: dict[str, Any] | None
    event_id: str | None = None

    @property
    def error_code(self) -> str | None:
        value = self.data.get("error_code") or self.data.get("error")
        return str(value) if value else None

    @property
    def error_message(self) -> str | None:
        value = self.data.get("error_message") or self.data.get("message")
        return str(value) if value else None

    def artifacts(self) -> dict[str, str]:
        """The presigned URLs it carries, by name (`mp4` read as `video`)."""
        urls = {k: self.data[k] for k in ARTIFACT_KEYS if isinstance(self.data.get(k), str)}
        if "mp4" in urls:
            urls.setdefault("video", urls.pop("mp4"))
        return urls


@dataclass(frozen=True)
class CalendarNotice:
    """A calendar webhook: v2 calendar.* or v1 calendar.sync_events."""

    kind: str
    calendar_id: str
    data: dict[str, Any]


@dataclass(frozen=True)
class OtherNotice:
    """An event this bridge only counts (chat messages, transcription_complete...)."""

    kind: str
    data: dict[str, Any]


Notice = BotStatus | BotFinal | CalendarNotice | OtherNotice


def parse_notice(body: bytes) -> Notice:
    """The event a delivery's JSON body carries; BadDelivery if it is not one."""
    try:
        payload = json.loads(body)
    except ValueError:
        raise BadDelivery("the body is not JSON") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("event"), str):
        raise BadDelivery("no `event` field")
    kind = payload["event"]
    data = payload.get("data")
    if not isinstance(data, dict):
        raise BadDelivery("no `data` object")
    extra = payload.get("extra") if isinstance(payload.get("extra"), dict) else None
    if extra is None and isinstance(data.get("extra"), dict):  # the prose's place for it
        extra = data["extra"]
    if kind.startswith("calendar."):
        calendar_id = data.get("calendar_id")
        if not isinstance(calendar_id, str):
            raise BadDelivery(f"{kind}: no calendar_id")
        return CalendarNotice(kind, calendar_id, data)
    kind = FINAL_V1.get(kind, kind)
    if kind not in ("bot.status_change", "bot.completed", "bot.failed"):
        return OtherNotice(kind, data)
    bot_id = data.get("bot_id")
    if not isinstance(bot_id, str | int) or isinstance(bot_id, bool):
        raise BadDelivery(f"{kind}: no bot_id")
    event_id = data.get("event_id") or data.get("event_uuid")
    event_id = str(event_id) if event_id else None
    if kind == "bot.status_change":
        status = data.get("status")
        if not isinstance(status, dict) or not isinstance(status.get("code"), str):
            raise BadDelivery("bot.status_change: no status.code")
        rest = {k: v for k, v in status.items() if k not in ("code", "created_at")}
        created = status.get("created_at")
        return BotStatus(
            str(bot_id), status["code"], str(created) if created else None, rest, extra, event_id
        )
    body_data = {k: v for k, v in data.items() if k != "extra"}
    return BotFinal(kind, str(bot_id), body_data, extra, event_id)  # type: ignore[arg-type]


def delivery_key(scheme: Scheme, headers: dict[str, str], notice: Notice) -> str:
    """What makes a delivery the same as an earlier one: SVIX's message id (the same on
    every retry); else the event, bot, status code and time."""
    msg_id = headers.get("svix-id") or headers.get("webhook-id")
    if scheme == "svix" and msg_id:
        return f"svix:{msg_id}"
    if isinstance(notice, BotStatus):
        return f"status:{notice.bot_id}:{notice.code}:{notice.created_at}"
    if isinstance(notice, BotFinal):
        return f"final:{notice.kind}:{notice.bot_id}"
    return f"{notice.kind}:{json.dumps(notice.data, sort_keys=True)}"


def content_key(notice: Notice) -> str | None:
    """A second key, for a resend that SVIX counts as a new message: a bot's final event,
    or one status change, happens once."""
    if isinstance(notice, BotStatus):
        return f"status:{notice.bot_id}:{notice.code}:{notice.created_at}"
    if isinstance(notice, BotFinal):
        return f"final:{notice.kind}:{notice.bot_id}"
    return None


@dataclass
class RecentKeys:
    """Keys seen within window_s, at most capacity of them (the oldest are forgotten)."""

    capacity: int
    window_s: float
    _seen: OrderedDict[str, float] = field(default_factory=OrderedDict)

    def seen(self, key: str, now: float | None = None) -> bool:
        """Whether key was seen within the window; remembers it either way."""
        now = time.monotonic() if now is None else now
        while self._seen and (
            len(self._seen) > self.capacity or next(iter(self._seen.values())) < now - self.window_s
        ):
            self._seen.popitem(last=False)
        known = key in self._seen and self._seen[key] >= now - self.window_s
        if not known:
            self._seen[key] = now
            self._seen.move_to_end(key)
            if len(self._seen) > self.capacity:
                self._seen.popitem(last=False)
        return known
