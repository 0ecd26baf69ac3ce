"""`serve --auto-join CALENDAR_ID`: a speaking bot for every calendar event with a meeting URL.

Calendar webhooks (v2 `calendar.*`, v1 `calendar.sync_events`) and a listing at start put
events in a bounded queue; one worker decides each against what it has booked (`decide`,
synchronous) and calls the API, one write at a time, at most one per
calendar_request_interval_s; a 429 waits its Retry-After (the client's retry policy). A
new event gets a bot with its own session and signed URLs, valid from the event's start;
a moved one gets new URLs; one whose meeting URL changed gets a new bot; a cancelled one
loses its bot. An event whose bot is already scheduled (by us before a restart, or by
someone else) gets none: one event never gets two bots.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Literal

from bridge.config import BridgeConfig
from bridge.meetingbaas.calendars import CalendarEvent, Calendars
from bridge.meetingbaas.client import ApiError, BotSpec
from bridge.meetingbaas.launcher import session_urls, tied_to_session
from bridge.meetingbaas.webhooks import CalendarNotice

log = logging.getLogger(__name__)

Decision = Literal["schedule", "move", "replace", "unschedule"]
INSTANCE_KEYS = ("instances", "affected_instances", "cancelled_instances")


@dataclass(frozen=True)
class Booked:
    """A bot this bridge scheduled for an occurrence."""

    session_id: str
    start: float
    meeting_url: str


def decide(event: CalendarEvent, booked: Booked | None, now: float) -> Decision | None:
    """What to do about one occurrence, given the bot booked for it (if any)."""
    if event.cancelled:
        return "unschedule" if booked is not None else None
    if booked is None:
        if event.meeting_url is None or event.bot_scheduled or event.start < now:
            return None
        return "schedule"
    if event.meeting_url is not None and event.meeting_url != booked.meeting_url:
        return "replace"
    if event.start != booked.start and event.start >= now:
        return "move"
    return None


@dataclass(frozen=True)
class Work:
    """An item of the queue: occurrences to decide, or a calendar (or some v1 events) to read."""

    calendar_id: str
    events: tuple[CalendarEvent, ...] = ()
    read_ids: tuple[str, ...] = ()  # v1: events to look up first
    read_all: bool = False


class AutoJoin:
    """Books speaking bots for the events of the calendars it watches."""

    def __init__(
        self,
        calendars: Calendars,
        config: BridgeConfig,
        calendar_ids: set[str],
        template: BotSpec,
    ) -> None:
        self.calendars = calendars
        self.config = config
        self.calendar_ids = calendar_ids
        self.template = template  # bot_name, messages, timeouts; URLs are made per event
        self.booked: OrderedDict[str, Booked] = OrderedDict()  # by event id
        self.dropped = 0
        self.done: Counter[str] = Counter()  # decisions carried out
        self._queue: asyncio.Queue[Work] = asyncio.Queue(maxsize=config.calendar_queue_size)
        self._task: asyncio.Task[None] | None = None
        self._last_write = 0.0

    def start(self) -> None:
        """Start the worker, with a first reading of every calendar watched."""
        self._task = asyncio.create_task(self._run(), name="auto-join")
        for calendar_id in sorted(self.calendar_ids):
            self._put(Work(calendar_id, read_all=True))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def idle(self) -> None:
        """Wait until everything queued so far has been handled."""
        await self._queue.join()

    def notice(self, notice: CalendarNotice) -> None:
        """A calendar webhook: queue what it says about a watched calendar."""
        if notice.calendar_id not in self.calendar_ids:
            log.info("calendar %s: %s (not auto-joined)", notice.calendar_id, notice.kind)
            return
        data = notice.data
        if notice.kind == "calendar.sync_events":  # v1: which events changed, not how
            ids = tuple(str(i) for i in data.get("affected_event_uuids") or [])
            self._put(Work(notice.calendar_id, read_ids=ids))
        elif notice.kind == "calendar.events_synced" and not isinstance(data.get("events"), list):
            self._put(Work(notice.calendar_id, read_all=True))  # the prose's form: counts only
        elif notice.kind.startswith("calendar.event") or notice.kind == "calendar.events_synced":
            self._put(Work(notice.calendar_id, events=tuple(_instances(notice))))
        else:
            log.info("calendar %s: %s", notice.calendar_id, notice.kind)

    def _put(self, work: Work) -> None:
        try:
            self._queue.put_nowait(work)
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("calendar %s: auto-join queue full; a change is lost", work.calendar_id)

    async def _run(self) -> None:
        while True:
            work = await self._queue.get()
            try:
                for event in await self._events_of(work):
                    await self._settle(work.calendar_id, event)
            except (ApiError, ValueError, KeyError) as exc:
                log.warning("calendar %s: auto-join failed: %s", work.calendar_id, exc)
            except Exception:  # a bug: logged, and the worker goes on with the next change
                log.exception("calendar %s: auto-join failed", work.calendar_id)
            finally:
                self._queue.task_done()

    async def _events_of(self, work: Work) -> list[CalendarEvent]:
        if work.read_all:
            return await self.calendars.events(work.calendar_id, after=time.time())
        events = list(work.events)
        for event_id in work.read_ids:
            events.append(await self.calendars.event(work.calendar_id, event_id))
        return events

    async def _settle(self, calendar_id: str, event: CalendarEvent) -> None:
        """Decide one occurrence and carry it out; an API refusal is logged, not retried."""
        booked = self.booked.get(event.event_id)
        decision = decide(event, booked, time.time())
        if decision is None:
            return
        try:
            if decision in ("unschedule", "replace"):
                await self._pace()
                await self.calendars.unschedule(calendar_id, event)
                self.booked.pop(event.event_id, None)
                log.info("calendar %s: event %s: bot unscheduled", calendar_id, event.event_id)
            if decision in ("schedule", "replace"):
                await self._book(calendar_id, event, uuid.uuid4().hex, new=True)
            elif decision == "move":
                assert booked is not None
                await self._book(calendar_id, event, booked.session_id, new=False)
        except (ApiError, ValueError) as exc:
            log.warning(
                "calendar %s: event %s: %s failed: %s", calendar_id, event.event_id, decision, exc
            )
            return
        self.done[decision] += 1

    async def _book(
        self, calendar_id: str, event: CalendarEvent, session_id: str, new: bool
    ) -> None:
        assert event.meeting_url is not None
        urls = session_urls(self.config, False, session_id, joins_at=event.start)
        spec = self.template.model_copy(
            update={
                "meeting_url": event.meeting_url,
                "output_url": urls.output_url,
                "input_url": urls.input_url,
                "sample_rate": self.config.rate,
            }
        )
        spec, _ = tied_to_session(spec, self.config, session_id, self.calendars.client.api_version)
        await self._pace()
        if new:
            await self.calendars.schedule(calendar_id, event, spec)
        else:
            await self.calendars.update_streaming(calendar_id, event, spec)
        self.booked[event.event_id] = Booked(session_id, event.start, event.meeting_url)
        self.booked.move_to_end(event.event_id)
        while len(self.booked) > self.config.calendar_queue_size:
            self.booked.popitem(last=False)
        log.info(
            "calendar %s: event %s (%s): bot %s for session %s",
            calendar_id,
            event.event_id,
            event.title,
            "scheduled" if new else "given new URLs",
            session_id,
        )

    async def _pace(self) -> None:
        """At most one API write per calendar_request_interval_s (the team's rate limit)."""
        wait = self._last_write + self.config.calendar_request_interval_s - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last_write = time.monotonic()


def _instances(notice: CalendarNotice) -> list[CalendarEvent]:
    """The occurrences a v2 calendar webhook carries (cancelled_instances: cancelled)."""
    data = notice.data
    groups = data["events"] if notice.kind == "calendar.events_synced" else [data]
    events = []
    for group in groups:
        for key in INSTANCE_KEYS:
            for item in group.get(key) or []:
                event = CalendarEvent.from_v2(item, group.get("series_id"))
                if key == "cancelled_instances" and not event.cancelled:
                    event = CalendarEvent(**{**event.__dict__, "cancelled": True})
                events.append(event)
    return events
