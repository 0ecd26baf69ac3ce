"""A fake Meeting BaaS API: a real HTTP server on loopback that checks requests as documented.

It validates what the documentation says of each endpoint (the key header, JSON fields and
their types, per API version) and answers 422 with a message when a request breaks it.
It keeps the state the tests look at: created and scheduled bots, calendars, their events
and the bots scheduled for events. Tests can script responses (status, headers, body) per
endpoint, and react to a created bot (e.g. start a simulated bot on its streaming URLs).
It also sends webhooks the way Meeting BaaS does: SVIX-signed (signed by the `svix`
library itself, not by the code under test), per-bot callbacks with x-mb-secret, and v1
deliveries carrying the API key.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from svix.webhooks import Webhook

API_KEY = "test-key-123"
SVIX_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    query: dict[str, str] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)


@dataclass
class Scripted:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def _types(body: dict, expected: dict[str, type | tuple[type, ...]], prefix: str = "") -> list[str]:
    return [
        f"{prefix}{key}: required {getattr(kind, '__name__', 'value')}"
        for key, kind in expected.items()
        if not isinstance(body.get(key), kind)
    ]


def _iso(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _ws(url: Any) -> bool:
    return isinstance(url, str) and url.startswith(("ws://", "wss://"))


def v1_bot_problems(body: dict) -> list[str]:
    problems = _types(body, {"meeting_url": str, "bot_name": str, "reserved": bool})
    streaming = body.get("streaming")
    if not isinstance(streaming, dict):
        return [*problems, "streaming: required object"]
    problems += _types(streaming, {"input": str, "output": str}, "streaming.")
    if streaming.get("audio_frequency", "24khz") not in ("16khz", "24khz"):
        problems.append("streaming.audio_frequency: must be 16khz or 24khz")
    for key in ("speech_to_text", "automatic_leave", "extra"):
        if key in body and not isinstance(body[key], dict):
            problems.append(f"{key}: must be an object")
    if "start_time" in body:
        start = body["start_time"]
        if not isinstance(start, int) or not 1e9 < start < 1e10:
            problems.append("start_time: must be Unix seconds (integer)")
    if "webhook_url" in body and not str(body["webhook_url"]).startswith("http"):
        problems.append("webhook_url: must be an http(s) URL")
    return problems


def _streaming_config_problems(config: Any) -> list[str]:
    if not isinstance(config, dict):
        return ["streaming_config: required object"]
    problems = _types(config, {"input_url": str, "output_url": str}, "streaming_config.")
    if config.get("audio_frequency") not in (16000, 24000, 32000, 48000):
        problems.append("streaming_config.audio_frequency: 16000, 24000, 32000 or 48000 (int Hz)")
    mode = config.get("mode", "audio")
    if mode not in ("audio", "transcription"):
        problems.append("streaming_config.mode: audio or transcription")
    transcription = config.get("transcription")
    if mode == "transcription" and not (
        isinstance(transcription, dict) and isinstance(transcription.get("provider"), str)
    ):
        problems.append("streaming_config.transcription: required, with a provider, in that mode")
    return problems


def v2_bot_fields_problems(body: dict) -> list[str]:
    """The fields every v2 bot takes (POST /v2/bots, scheduled, calendar bots)."""
    problems = _types(body, {"bot_name": str, "streaming_enabled": bool})
    problems += _streaming_config_problems(body.get("streaming_config"))
    for name, value in (body.get("timeout_config") or {}).items():
        if not isinstance(value, int) or value < 120:
            problems.append(f"timeout_config.{name}: minimum 120")
    if body.get("callback_enabled"):
        callback = body.get("callback_config")
        if not isinstance(callback, dict) or not str(callback.get("url", "")).startswith("http"):
            problems.append("callback_config.url: required (http URL) when callback_enabled")
        elif callback.get("method", "POST") not in ("POST", "PUT"):
            problems.append("callback_config.method: POST or PUT")
    if "extra" in body and not isinstance(body["extra"], dict | None):
        problems.append("extra: must be an object")
    return problems


def v2_bot_problems(body: dict) -> list[str]:
    return _types(body, {"meeting_url": str}) + v2_bot_fields_problems(body)


def v2_scheduled_problems(body: dict) -> list[str]:
    problems = v2_bot_problems(body)
    join_at = _iso(body.get("join_at"))
    if join_at is None:
        problems.append("join_at: required ISO-8601 date-time")
    elif not time.time() - 60 <= join_at <= time.time() + 90 * 86400:
        problems.append("join_at: must be within 90 days from now, not in the past")
    return problems


def v2_target_problems(body: dict) -> list[str]:
    problems = []
    if not isinstance(body.get("series_id"), str):
        problems.append("series_id: required uuid")
    if not isinstance(body.get("all_occurrences"), bool):
        problems.append("all_occurrences: required boolean")
    if body.get("all_occurrences") is False and not isinstance(body.get("event_id"), str):
        problems.append("event_id: required when all_occurrences is false")
    return problems


V1_CALENDAR_BOT = {
    "bot_name", "bot_image", "enter_message", "extra", "recording_mode", "speech_to_text",
    "transcription_custom_parameters", "streaming_input", "streaming_output",
    "streaming_audio_frequency", "waiting_room_timeout", "noone_joined_timeout",
    "silence_timeout", "webhook_url", "deduplication_key",
}  # fmt: skip


def v1_calendar_bot_problems(body: dict, partial: bool = False) -> list[str]:
    problems = [f"{k}: not a BotParam field" for k in body if k not in V1_CALENDAR_BOT]
    if not partial:
        problems += _types(body, {"bot_name": str})
    for key in ("streaming_input", "streaming_output"):
        if (key in body or not partial) and not _ws(body.get(key)):
            problems.append(f"{key}: a ws(s):// URL")
    if body.get("streaming_audio_frequency", "24khz") not in ("16khz", "24khz"):
        problems.append("streaming_audio_frequency: 16khz or 24khz")
    return problems


@dataclass
class CalendarState:
    """A calendar and its events (v2 instance form; v1 answers are derived)."""

    calendar_id: str
    platform: str
    email: str
    events: dict[str, dict] = field(default_factory=dict)
    bots: dict[str, dict] = field(default_factory=dict)  # event id -> the bot's body


class FakeMeetingBaas:
    """Start with `with FakeMeetingBaas() as api:`; api.url is its base URL."""

    def __init__(self, on_create: Callable[[dict], None] | None = None) -> None:
        self.requests: list[Recorded] = []
        self.scripts: dict[tuple[str, str], list[Scripted]] = {}
        self.on_create = on_create
        self.bots: dict[str, dict] = {}  # created and scheduled bots by id
        self.calendars: dict[str, CalendarState] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def script(self, method: str, path: str, *responses: Scripted) -> None:
        """Answer the next requests to method path with these, in order, then as usual."""
        self.scripts.setdefault((method, path), []).extend(responses)

    def __enter__(self) -> FakeMeetingBaas:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # calendars, as the provider's side would change them

    def add_calendar(self, email: str = "ana@example.com") -> CalendarState:
        state = CalendarState(str(uuid.uuid4()), "google", email)
        self.calendars[state.calendar_id] = state
        return state

    def put_event(
        self,
        calendar: CalendarState,
        start: float,
        meeting_url: str | None = "https://meet.google.com/abc-defg-hij",
        event_id: str | None = None,
        status: str = "confirmed",
        title: str = "standup",
    ) -> dict:
        """Add or change an event (v2 instance form); returns it."""
        event_id = event_id or str(uuid.uuid4())
        old = calendar.events.get(event_id, {})
        event = {
            "event_id": event_id,
            "series_id": old.get("series_id") or str(uuid.uuid4()),
            "start": _iso_text(start),
            "end": _iso_text(start + 1800),
            "title": title,
            "status": status,
            "is_all_day": False,
            "is_exception": False,
            "bot_scheduled": event_id in calendar.bots,
            "meeting_url": meeting_url,
            "meeting_platform": "meet" if meeting_url else None,
        }
        calendar.events[event_id] = event
        return event

    def instance(self, calendar: CalendarState, event_id: str) -> dict:
        event = dict(calendar.events[event_id])
        event["bot_scheduled"] = event_id in calendar.bots
        return {k: v for k, v in event.items() if k != "series_id"}

    # the API

    def answer(self, method: str, target: str, headers: dict[str, str], body: Any) -> Scripted:
        parts = urlsplit(target)
        path, query = parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()}
        with self._lock:
            self.requests.append(Recorded(method, path, headers, body, query))
            scripted = self.scripts.get((method, path))
            if scripted:
                return scripted.pop(0)
            if headers.get("x-meeting-baas-api-key") != API_KEY:
                return Scripted(401, {"error": "Invalid API key"})
            if body is not None and headers.get("content-type") != "application/json":
                return Scripted(400, {"message": "expected JSON"})
            return self._route(method, path, query, body)

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> Scripted:
        for (verb, pattern), handler in self._routes().items():
            match = re.fullmatch(pattern, path)
            if verb == method and match:
                needs_body = method == "PATCH" or (method == "POST" and "leave" not in path)
                if needs_body and not isinstance(body, dict | list):
                    return Scripted(400, {"message": "expected a JSON body"})
                return handler(query, body or {}, *match.groups())
        return Scripted(404, {"message": f"no route {method} {path}"})

    def _routes(self) -> dict[tuple[str, str], Callable[..., Scripted]]:
        return {
            ("POST", "/bots/?"): self._v1_create,
            ("DELETE", r"/bots/([^/]+)"): lambda q, b, i: Scripted(200, {"ok": True}),
            ("POST", "/v2/bots"): self._v2_create,
            ("POST", r"/v2/bots/([^/]+)/leave"): lambda q, b, i: _ok({"message": "leaving"}),
            ("POST", "/v2/bots/scheduled"): self._v2_schedule,
            ("GET", "/v2/bots/scheduled"): self._v2_scheduled,
            ("DELETE", r"/v2/bots/scheduled/([^/]+)"): self._v2_cancel,
            ("POST", "/v2/calendars/list-raw"): self._v2_list_raw,
            ("POST", "/v2/calendars"): self._v2_connect,
            ("GET", "/v2/calendars"): lambda q, b: _ok(self._v2_calendars()),
            ("GET", r"/v2/calendars/([^/]+)/events"): self._v2_events,
            ("GET", r"/v2/calendars/([^/]+)/events/([^/]+)"): self._v2_event,
            ("POST", r"/v2/calendars/([^/]+)/bots"): self._v2_calendar_bot,
            ("PATCH", r"/v2/calendars/([^/]+)/bots"): self._v2_calendar_bot,
            ("DELETE", r"/v2/calendars/([^/]+)/bots"): self._v2_calendar_bot,
            ("POST", "/calendars/raw"): self._v1_list_raw,
            ("POST", "/calendars/?"): self._v1_connect,
            ("GET", "/calendars/?"): lambda q, b: Scripted(200, self._v1_calendars()),
            ("GET", "/calendar_events/?"): self._v1_events,
            ("GET", r"/calendar_events/([^/]+)"): self._v1_event,
            ("POST", r"/calendar_events/([^/]+)/bot"): self._v1_calendar_bot,
            ("PATCH", r"/calendar_events/([^/]+)/bot"): self._v1_calendar_bot,
            ("DELETE", r"/calendar_events/([^/]+)/bot"): self._v1_calendar_bot,
        }

    def _new_bot(self, body: dict) -> str:
        bot_id = f"bot-{next(self._ids)}"
        self.bots[bot_id] = body
        if self.on_create:
            self.on_create(body)
        return bot_id

    def _v1_create(self, query: dict, body: dict) -> Scripted:
        if problems := v1_bot_problems(body):
            return Scripted(422, {"message": "; ".join(problems)})
        return Scripted(200, {"bot_id": self._new_bot(body)})

    def _v2_create(self, query: dict, body: dict) -> Scripted:
        if "join_at" in body:
            return _v2_error(400, "join_at: not a field of POST /v2/bots")
        if problems := v2_bot_problems(body):
            return _v2_error(400, "; ".join(problems))
        return Scripted(201, {"success": True, "data": {"bot_id": self._new_bot(body)}})

    def _v2_schedule(self, query: dict, body: dict) -> Scripted:
        if problems := v2_scheduled_problems(body):
            return _v2_error(400, "; ".join(problems))
        bot_id = f"bot-{next(self._ids)}"
        self.bots[bot_id] = body | {"status": "scheduled"}
        return Scripted(201, {"success": True, "data": {"bot_id": bot_id}})

    def _v2_scheduled(self, query: dict, body: dict) -> Scripted:
        rows = [
            {"bot_id": i, "bot_name": b["bot_name"], "meeting_url": b["meeting_url"],
             "join_at": b["join_at"], "status": b["status"]}
            for i, b in self.bots.items()
            if b.get("status") and b["status"] == query.get("status", b["status"])
        ]  # fmt: skip
        return Scripted(200, {"success": True, "data": rows, "cursor": None, "prev_cursor": None})

    def _v2_cancel(self, query: dict, body: dict, bot_id: str) -> Scripted:
        bot = self.bots.get(bot_id)
        if bot is None or "status" not in bot:
            return _v2_error(404, f"no scheduled bot {bot_id}")
        if bot["status"] != "scheduled":
            return _v2_error(409, f"bot {bot_id} is {bot['status']}")
        bot["status"] = "cancelled"
        return _ok({"message": "cancelled"})

    def _oauth_problems(self, body: dict, platform_key: str, platforms: tuple) -> list[str]:
        problems = _types(
            body, {"oauth_client_id": str, "oauth_client_secret": str, "oauth_refresh_token": str}
        )
        if body.get(platform_key) not in platforms:
            problems.append(f"{platform_key}: one of {platforms}")
        return problems

    def _v2_list_raw(self, query: dict, body: dict) -> Scripted:
        if problems := self._oauth_problems(body, "calendar_platform", ("google", "microsoft")):
            return _v2_error(400, "; ".join(problems))
        raws = [
            {"id": "primary-raw", "name": "Ana", "email": "ana@example.com", "is_primary": True},
            {"id": "team-raw", "name": "Team", "email": "team@example.com", "is_primary": False},
        ]
        return _ok(raws)

    def _v2_connect(self, query: dict, body: dict) -> Scripted:
        problems = self._oauth_problems(body, "calendar_platform", ("google", "microsoft"))
        if not isinstance(body.get("raw_calendar_id"), str):
            problems.append("raw_calendar_id: required")
        if problems:
            return _v2_error(400, "; ".join(problems))
        state = self.add_calendar(f"{body['raw_calendar_id']}@example.com")
        return Scripted(201, {"success": True, "data": self._v2_calendar(state)})

    def _v2_calendar(self, c: CalendarState) -> dict:
        return {"calendar_id": c.calendar_id, "calendar_platform": c.platform,
                "account_email": c.email, "status": "active", "synced_at": None,
                "created_at": "2026-05-01T10:00:00Z"}  # fmt: skip

    def _v2_calendars(self) -> list[dict]:
        return [self._v2_calendar(c) for c in self.calendars.values()]

    def _calendar(self, calendar_id: str) -> CalendarState | None:
        return self.calendars.get(calendar_id)

    def _v2_row(self, c: CalendarState, event: dict) -> dict:
        return {
            "event_id": event["event_id"], "series_id": event["series_id"],
            "event_type": "one_off", "title": event["title"], "start_time": event["start"],
            "end_time": event["end"], "status": event["status"], "is_exception": False,
            "meeting_url": event["meeting_url"], "meeting_platform": event["meeting_platform"],
            "calendar_id": c.calendar_id, "bot_scheduled": event["event_id"] in c.bots,
            "created_at": "2026-05-01T10:00:00Z",
        }  # fmt: skip

    def _v2_events(self, query: dict, body: dict, calendar_id: str) -> Scripted:
        c = self._calendar(calendar_id)
        if c is None:
            return _v2_error(404, f"no calendar {calendar_id}")
        if not 1 <= int(query.get("limit", "50")) <= 250:
            return _v2_error(400, "limit: 1 to 250")
        after = _iso(query.get("start_date")) if "start_date" in query else None
        rows = [
            self._v2_row(c, e)
            for e in c.events.values()
            if (after is None or _iso(e["start"]) >= after)
            and (query.get("show_cancelled", "true") == "true" or e["status"] != "cancelled")
        ]
        return Scripted(200, {"success": True, "data": rows, "cursor": None, "prev_cursor": None})

    def _v2_event(self, query: dict, body: dict, calendar_id: str, event_id: str) -> Scripted:
        c = self._calendar(calendar_id)
        if c is None or event_id not in c.events:
            return _v2_error(404, f"no event {event_id}")
        return _ok(self._v2_row(c, c.events[event_id]))

    def _v2_calendar_bot(self, query: dict, body: dict, calendar_id: str) -> Scripted:
        c = self._calendar(calendar_id)
        if c is None:
            return _v2_error(404, f"no calendar {calendar_id}")
        method = self.requests[-1].method
        problems = v2_target_problems(body)
        if method == "POST":
            problems += v2_bot_fields_problems(body)
            if "meeting_url" in body or "join_at" in body:
                problems.append("meeting_url/join_at: not fields of a calendar bot")
        elif method == "PATCH" and ("streaming_enabled" in body) != ("streaming_config" in body):
            problems.append("streaming_enabled and streaming_config go together")
        elif method == "PATCH" and "streaming_config" in body:
            problems += _streaming_config_problems(body["streaming_config"])
        if problems:
            return _v2_error(400, "; ".join(problems))
        event_id = body["event_id"]
        event = c.events.get(event_id)
        if event is None or event["series_id"] != body["series_id"]:
            return _v2_error(404, f"no event {event_id} in series {body['series_id']}")
        errors = []
        if method == "POST" and event_id in c.bots:
            errors.append({"event_id": event_id, "code": "BOT_ALREADY_SCHEDULED",
                           "message": "a bot is already scheduled", "details": None})  # fmt: skip
        elif method == "POST" and not event["meeting_url"]:
            errors.append({"event_id": event_id, "code": "NO_MEETING_URL",
                           "message": "the event has no meeting URL", "details": None})  # fmt: skip
        elif method in ("PATCH", "DELETE") and event_id not in c.bots:
            return _v2_error(404, f"no bot scheduled for event {event_id}")
        elif method == "POST":
            c.bots[event_id] = body | {"meeting_url": event["meeting_url"]}
        elif method == "PATCH":
            c.bots[event_id] = c.bots[event_id] | body
        else:
            del c.bots[event_id]
        data = [] if errors else [{"event_id": event_id}]
        status = 201 if method == "POST" else 200
        return Scripted(status, {"success": True, "data": data, "errors": errors})

    def _v1_list_raw(self, query: dict, body: dict) -> Scripted:
        if problems := self._oauth_problems(body, "platform", ("Google", "Microsoft")):
            return Scripted(422, {"message": "; ".join(problems)})
        return Scripted(200, {"calendars": [{"id": "primary-raw", "email": "ana@example.com"}]})

    def _v1_connect(self, query: dict, body: dict) -> Scripted:
        if problems := self._oauth_problems(body, "platform", ("Google", "Microsoft")):
            return Scripted(422, {"message": "; ".join(problems)})
        state = self.add_calendar()
        return Scripted(200, {"calendar": self._v1_calendar(state)})

    def _v1_calendar(self, c: CalendarState) -> dict:
        return {"uuid": c.calendar_id, "name": "Ana", "email": c.email, "google_id": "g1"}

    def _v1_calendars(self) -> list[dict]:
        return [self._v1_calendar(c) for c in self.calendars.values()]

    def _v1_row(self, c: CalendarState, event: dict) -> dict:
        bot = c.bots.get(event["event_id"])
        return {
            "uuid": event["event_id"], "calendar_uuid": c.calendar_id, "google_id": "g",
            "name": event["title"], "start_time": event["start"], "end_time": event["end"],
            "meeting_url": event["meeting_url"] or "", "is_organizer": True,
            "is_recurring": False, "recurring_event_id": None, "attendees": [],
            "deleted": event["status"] == "cancelled", "last_updated_at": event["start"],
            "raw": {}, "bot_param": bot,
        }  # fmt: skip

    def _v1_events(self, query: dict, body: dict) -> Scripted:
        c = self._calendar(query.get("calendar_id", ""))
        if c is None:
            return Scripted(422, {"message": "calendar_id: required, a known calendar"})
        rows = [self._v1_row(c, e) for e in c.events.values()]
        return Scripted(200, {"data": rows, "next": None})

    def _v1_find(self, event_id: str) -> tuple[CalendarState, dict] | None:
        for c in self.calendars.values():
            if event_id in c.events:
                return c, c.events[event_id]
        return None

    def _v1_event(self, query: dict, body: dict, event_id: str) -> Scripted:
        found = self._v1_find(event_id)
        if found is None:
            return Scripted(404, {"message": f"no event {event_id}"})
        return Scripted(200, self._v1_row(*found))

    def _v1_calendar_bot(self, query: dict, body: dict, event_id: str) -> Scripted:
        found = self._v1_find(event_id)
        if found is None:
            return Scripted(404, {"message": f"no event {event_id}"})
        if query.get("all_occurrences") not in ("true", "false"):
            return Scripted(422, {"message": "all_occurrences: query parameter true or false"})
        c, event = found
        method = self.requests[-1].method
        if method == "DELETE":
            if body:
                return Scripted(422, {"message": "DELETE takes no body"})
            c.bots.pop(event_id, None)
        else:
            if problems := v1_calendar_bot_problems(body, partial=method == "PATCH"):
                return Scripted(422, {"message": "; ".join(problems)})
            c.bots[event_id] = (c.bots.get(event_id) or {}) | body
        return Scripted(200, [self._v1_row(c, event)])

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                headers = {k.lower(): v for k, v in self.headers.items()}
                reply = fake.answer(self.command, self.path, headers, body)
                data = json.dumps(reply.body).encode() if reply.body is not None else b""
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PATCH = _serve

            def log_message(self, *args: object) -> None:
                pass

        return Handler


def _ok(data: Any) -> Scripted:
    return Scripted(200, {"success": True, "data": data})


def _v2_error(status: int, message: str) -> Scripted:
    labels = {400: "Bad Request", 404: "Not Found", 409: "Conflict"}
    return Scripted(
        status,
        {"success": False, "error": labels.get(status, "Error"), "code": "FST_ERR_VALIDATION",
         "statusCode": status, "message": message},
    )  # fmt: skip


def _iso_text(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# Webhooks, sent as Meeting BaaS sends them


def svix_headers(
    body: bytes,
    secrets: tuple[str, ...] = (SVIX_SECRET,),
    msg_id: str | None = None,
    sent_at: float | None = None,
    prefix: str = "svix",
) -> dict[str, str]:
    """SVIX's headers for body, one signature per secret (more than one while rotating),
    signed by the svix library."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    stamp = datetime.fromtimestamp(time.time() if sent_at is None else sent_at, UTC)
    signatures = " ".join(Webhook(s).sign(msg_id, stamp, body.decode()) for s in secrets)
    return {
        f"{prefix}-id": msg_id,
        f"{prefix}-timestamp": str(int(stamp.timestamp())),
        f"{prefix}-signature": signatures,
        "content-type": "application/json",
    }


def deliver(
    url: str, payload: dict, headers: dict[str, str] | None = None, **svix: Any
) -> httpx.Response:
    """POST payload to url: SVIX-signed unless headers are given (callbacks, v1)."""
    body = json.dumps(payload).encode()
    sent = headers if headers is not None else svix_headers(body, **svix)
    return httpx.post(
        url, content=body, headers={"content-type": "application/json", **sent}, timeout=10
    )


def status_change(bot_id: str, code: str, extra: dict | None = None, **fields: Any) -> dict:
    """A v2 bot.status_change (the schema's form: extra beside data)."""
    status = {"code": code, "created_at": _iso_text(time.time())} | fields
    data = {"bot_id": bot_id, "event_id": None, "status": status}
    return {"event": "bot.status_change", "data": data, "extra": extra}


def completed(
    bot_id: str, audio_url: str | None, transcript_url: str | None, extra: dict | None = None
) -> dict:
    """A v2 bot.completed with participants, speakers and presigned URLs."""
    people = [{"name": "Ana", "id": 1}, {"name": "Bo", "id": 2, "display_name": "Bo B."}]
    return {
        "event": "bot.completed",
        "data": {
            "bot_id": bot_id, "event_id": None, "participants": people, "speakers": people[:1],
            "duration_seconds": 1820, "joined_at": "2026-05-01T10:00:02Z",
            "exited_at": "2026-05-01T10:30:22Z", "data_deleted": False, "video": None,
            "audio": audio_url, "diarization": None, "raw_transcription": None,
            "transcription": transcript_url, "transcription_provider": "gladia",
            "transcription_ids": None, "sent_at": _iso_text(time.time()),
        },
        "extra": extra,
    }  # fmt: skip


def failed(bot_id: str, code: str, message: str, extra: dict | None = None) -> dict:
    return {"event": "bot.failed",
            "data": {"bot_id": bot_id, "event_id": None, "error_code": code,
                     "error_message": message, "sent_at": _iso_text(time.time())},
            "extra": extra}  # fmt: skip
