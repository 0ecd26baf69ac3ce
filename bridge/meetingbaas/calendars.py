"""Calendars: connecting them, their events, and speaking bots scheduled for events (v1, v2).

v2: `/v2/calendars...`; a calendar bot is targeted by `series_id`, `all_occurrences` and
`event_id` and carries the full `streaming_config`. v1: `/calendars...` and
`/calendar_events/{uuid}/bot`, whose body (BotParam) has the flat `streaming_input`,
`streaming_output`, `streaming_audio_frequency` fields. `CalendarEvent` reads both APIs'
events and both forms of the webhook instances (`start`/`end` or `start_time`/`end_time`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bridge.meetingbaas.client import BotSpec, MeetingBaasClient, iso_time, v2_request

PAGE_LIMIT = 20  # pages of events read at most per listing (50 or 100 events a page)


@dataclass(frozen=True)
class CalendarEvent:
    """One occurrence of a calendar event, as either API version describes it."""

    event_id: str
    series_id: str | None
    start: float  # Unix seconds
    meeting_url: str | None
    cancelled: bool
    bot_scheduled: bool
    title: str = ""

    @classmethod
    def from_v2(cls, item: dict[str, Any], series_id: str | None = None) -> CalendarEvent:
        """An instance of a v2 webhook, or a row of GET /v2/calendars/{id}/events."""
        return cls(
            event_id=str(item["event_id"]),
            series_id=item.get("series_id") or series_id,
            start=_unix(item.get("start") or item.get("start_time")),
            meeting_url=item.get("meeting_url") or None,
            cancelled=item.get("status") == "cancelled",
            bot_scheduled=bool(item.get("bot_scheduled")),
            title=str(item.get("title") or ""),
        )

    @classmethod
    def from_v1(cls, item: dict[str, Any]) -> CalendarEvent:
        """A v1 Event (GET /calendar_events/{uuid})."""
        return cls(
            event_id=str(item["uuid"]),
            series_id=item.get("recurring_event_id"),
            start=_unix(item.get("start_time")),
            meeting_url=item.get("meeting_url") or None,
            cancelled=bool(item.get("deleted")),
            bot_scheduled=item.get("bot_param") is not None,
            title=str(item.get("name") or ""),
        )


def _unix(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"no start time: {value!r}")
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def v1_calendar_bot(spec: BotSpec) -> dict[str, Any]:
    """spec as v1's BotParam: flat streaming and timeout fields, `enter_message`."""
    body: dict[str, Any] = {
        "bot_name": spec.bot_name,
        "bot_image": spec.bot_image,
        "enter_message": spec.entry_message,
        "extra": spec.extra,
        "recording_mode": spec.recording_mode,
        "streaming_input": spec.input_url,
        "streaming_output": spec.output_url,
        "streaming_audio_frequency": "16khz" if spec.sample_rate == 16000 else "24khz",
        "waiting_room_timeout": spec.waiting_room_timeout,
        "noone_joined_timeout": spec.noone_joined_timeout,
        "silence_timeout": spec.silence_timeout,
        "webhook_url": spec.webhook_url,
        "deduplication_key": spec.deduplication_key,
    }
    return {k: v for k, v in body.items() if v is not None}


def v2_calendar_bot(spec: BotSpec) -> dict[str, Any]:
    """spec as a v2 calendar bot's fields: a bot's, without meeting_url and join_at."""
    body = v2_request(spec).model_dump(exclude_none=True)
    body.pop("meeting_url", None)
    body.pop("join_at", None)
    return body


class Calendars:
    """The calendar endpoints of one API version."""

    def __init__(self, client: MeetingBaasClient) -> None:
        self.client = client
        self.v1 = client.api_version == "v1"

    async def list_raw(self, platform: str, oauth: dict[str, str]) -> list[dict[str, Any]]:
        """The provider's calendars for these OAuth credentials (before connecting one)."""
        if self.v1:
            body = oauth | {"platform": platform.capitalize()}
            return await self.client.request("POST", "/calendars/raw", body) or []
        body = oauth | {"calendar_platform": platform.lower()}
        return (await self.client.request("POST", "/v2/calendars/list-raw", body))["data"]

    async def connect(
        self, platform: str, oauth: dict[str, str], raw_calendar_id: str | None
    ) -> dict[str, Any]:
        """Connect a calendar (v2 needs raw_calendar_id: the primary one when None)."""
        if raw_calendar_id is None and not self.v1:
            raws = await self.list_raw(platform, oauth)
            primary = [c for c in raws if c.get("is_primary")] or raws[:1]
            if not primary:
                raise ValueError("these credentials see no calendar")
            raw_calendar_id = str(primary[0]["id"])
        target = {"raw_calendar_id": raw_calendar_id} if raw_calendar_id else {}
        if self.v1:
            body = oauth | {"platform": platform.capitalize()} | target
            return (await self.client.request("POST", "/calendars/", body))["calendar"]
        body = oauth | {"calendar_platform": platform.lower()} | target
        return (await self.client.request("POST", "/v2/calendars", body))["data"]

    async def list(self) -> list[dict[str, Any]]:
        if self.v1:
            return await self.client.request("GET", "/calendars/") or []
        return await self._pages("/v2/calendars", {})

    async def events(self, calendar_id: str, after: float | None = None) -> list[CalendarEvent]:
        """The calendar's events starting at or after `after` (Unix s), cancelled included."""
        if self.v1:
            params = {"calendar_id": calendar_id, "status": "upcoming"}
            if after is not None:
                params["start_date_gte"] = iso_time(after)
            rows = await self._v1_pages(params)
            return [CalendarEvent.from_v1(row) for row in rows]
        params = {"show_cancelled": "true"} | (
            {"start_date": iso_time(after)} if after is not None else {}
        )
        rows = await self._pages(f"/v2/calendars/{calendar_id}/events", params)
        return [CalendarEvent.from_v2(row) for row in rows]

    async def event(self, calendar_id: str, event_id: str) -> CalendarEvent:
        if self.v1:
            return CalendarEvent.from_v1(
                await self.client.request("GET", f"/calendar_events/{event_id}")
            )
        path = f"/v2/calendars/{calendar_id}/events/{event_id}"
        return CalendarEvent.from_v2((await self.client.request("GET", path))["data"])

    async def schedule(self, calendar_id: str, event: CalendarEvent, spec: BotSpec) -> None:
        """A speaking bot for this occurrence; ValueError with the API's words if refused."""
        if self.v1:
            path = f"/calendar_events/{event.event_id}/bot"
            await self.client.request(
                "POST", path, v1_calendar_bot(spec), params={"all_occurrences": "false"}
            )
            return
        body = v2_calendar_bot(spec) | _target(event)
        answer = await self.client.request("POST", f"/v2/calendars/{calendar_id}/bots", body)
        _raise_item_errors(answer, event)

    async def update_streaming(self, calendar_id: str, event: CalendarEvent, spec: BotSpec) -> None:
        """Give the occurrence's bot new streaming URLs (after the event moved)."""
        if self.v1:
            fields = v1_calendar_bot(spec)
            body = {k: v for k, v in fields.items() if k.startswith("streaming_")}
            await self.client.request(
                "PATCH",
                f"/calendar_events/{event.event_id}/bot",
                body,
                params={"all_occurrences": "false"},
            )
            return
        fields = v2_calendar_bot(spec)
        body = _target(event) | {
            "streaming_enabled": True,
            "streaming_config": fields["streaming_config"],
        }
        answer = await self.client.request("PATCH", f"/v2/calendars/{calendar_id}/bots", body)
        _raise_item_errors(answer, event)

    async def unschedule(self, calendar_id: str, event: CalendarEvent) -> None:
        """Remove the occurrence's bot (v1 is idempotent; v2 answers 404 if there was none)."""
        if self.v1:
            await self.client.request(
                "DELETE",
                f"/calendar_events/{event.event_id}/bot",
                params={"all_occurrences": "false"},
            )
            return
        answer = await self.client.request(
            "DELETE", f"/v2/calendars/{calendar_id}/bots", _target(event)
        )
        _raise_item_errors(answer, event)

    async def _pages(self, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        cursor = None
        for _ in range(PAGE_LIMIT):
            page = await self.client.request(
                "GET",
                path,
                params=params | {"limit": "50"} | ({"cursor": cursor} if cursor else {}),
            )
            rows += page.get("data") or []
            if not (cursor := page.get("cursor")):
                break
        return rows

    async def _v1_pages(self, params: dict[str, str]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        cursor = None
        for _ in range(PAGE_LIMIT):
            page = await self.client.request(
                "GET", "/calendar_events/", params=params | ({"cursor": cursor} if cursor else {})
            )
            rows += page.get("data") or []
            nxt = page.get("next")
            if not nxt:
                break
            cursor = _query_value(nxt, "cursor") or nxt
        return rows


def _target(event: CalendarEvent) -> dict[str, Any]:
    """The v2 calendar-bot target of one occurrence."""
    return {"series_id": event.series_id, "all_occurrences": False, "event_id": event.event_id}


def _raise_item_errors(answer: Any, event: CalendarEvent) -> None:
    """v2 answers 2xx with per-event errors; ours is raised as ValueError."""
    for error in (answer or {}).get("errors") or []:
        if str(error.get("event_id")) == event.event_id:
            raise ValueError(
                f"event {event.event_id}: {error.get('code')}: {error.get('message') or ''}"
            )


def _query_value(url: str, name: str) -> str | None:
    values = parse_qs(urlsplit(url).query).get(name)
    return values[-1] if values else None
