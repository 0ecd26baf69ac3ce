"""`serve --auto-join`: calendar webhooks to the bridge's port, bots booked in the fake API.

A sync that adds, moves and cancels events must schedule, update and unschedule exactly
the right bots, once each, whatever is delivered twice; a 429 waits its Retry-After.
"""

import argparse
import asyncio
import contextlib
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from bridge.cli import _meetingbaas_services
from bridge.meetingbaas.autojoin import Booked, decide
from bridge.meetingbaas.calendars import CalendarEvent
from tests.fake_meetingbaas import API_KEY, SVIX_SECRET, FakeMeetingBaas, Scripted, deliver

TTL = 3600.0


def expiry(url: str) -> int:
    return int(parse_qs(urlsplit(url).query)["token"][0].split(".")[0])


def session_of_url(url: str) -> str:
    return urlsplit(url).path.split("/")[2]


async def post(url: str, payload: dict, **kw) -> None:
    answer = await asyncio.to_thread(deliver, url, payload, **kw)
    assert answer.status_code == 200, answer.text


@contextlib.asynccontextmanager
async def auto_joining(start_bridge, api: FakeMeetingBaas, version: str, calendar_id: str):
    server = await start_bridge(
        "echo",
        public_url="wss://bridge.example",
        secret="s3cret",
        token_ttl_s=TTL,
        webhook_svix_secret=SVIX_SECRET,
        webhook_api_key=API_KEY,
        webhook_callback_secret="cb",
        auto_join=calendar_id,
        calendar_request_interval_s=0.01,
        bot_name="Notes",
    )
    args = argparse.Namespace(api_key=API_KEY, api_version=version, api_base_url=api.url)
    async with contextlib.AsyncExitStack() as services:
        await _meetingbaas_services(server, args, services)
        auto = server.webhooks.on_calendar.__self__
        auto.calendars.client.policy = auto.calendars.client.policy.__class__(4, 0.01, 5.0)
        yield server, auto, f"http://127.0.0.1:{server.port}/webhooks/meetingbaas"


def writes(api: FakeMeetingBaas) -> list[tuple[str, str]]:
    """The calendar-bot writes, as (method, event id), in order."""
    found = []
    for r in api.requests:
        if r.method == "GET":
            continue
        if r.path.endswith("/bots"):  # v2: the target is in the body
            found.append((r.method, r.body["event_id"]))
        elif r.path.startswith("/calendar_events/"):  # v1: in the path
            found.append((r.method, r.path.split("/")[2]))
    return found


async def test_v2_sync_adds_moves_and_cancels_exactly_the_right_bots(start_bridge):
    now = time.time()
    with FakeMeetingBaas() as api:
        cal = api.add_calendar()
        e1 = api.put_event(cal, now + 3600)["event_id"]
        no_url = api.put_event(cal, now + 3600, meeting_url=None)["event_id"]
        e3 = api.put_event(cal, now + 7200)["event_id"]
        taken = api.put_event(cal, now + 3600)["event_id"]
        cal.bots[taken] = {"bot_name": "someone else's"}
        api.put_event(cal, now - 7200)  # past: never booked
        async with auto_joining(start_bridge, api, "v2", cal.calendar_id) as (_, auto, hook):
            await auto.idle()  # the reading at start
            assert writes(api) == [("POST", e1), ("POST", e3)]
            first = cal.bots[e1]
            config = first["streaming_config"]
            assert first["bot_name"] == "Notes" and first["all_occurrences"] is False
            assert config["output_url"] == config["input_url"]
            assert expiry(config["output_url"]) >= now + 3600 + TTL - 5  # valid from its start
            session = session_of_url(config["output_url"])
            assert first["extra"] == {"speakbridge_session": session}
            assert first["callback_config"]["url"] == "https://bridge.example/webhooks/meetingbaas"

            # the calendar changes: e1 moves, e3 is cancelled, e5 is added (after a 429)
            moved = api.put_event(cal, now + 5400, event_id=e1)
            api.put_event(cal, now + 7200, event_id=e3, status="cancelled")
            e5 = api.put_event(cal, now + 9000)["event_id"]
            api.script(
                "POST",
                f"/v2/calendars/{cal.calendar_id}/bots",
                Scripted(429, {"success": False, "code": "FST_ERR_TOO_MANY_REQUESTS",
                               "statusCode": 429, "retryAfter": 1}, {"Retry-After": "1"}),
            )  # fmt: skip
            series = {"calendar_id": cal.calendar_id, "event_type": "one_off"}
            updated = {
                "event": "calendar.event_updated",
                "data": series | {"series_id": moved["series_id"], "series_bot_scheduled": False,
                                  "is_exception": False,
                                  "affected_instances": [api.instance(cal, e1)]},
            }  # fmt: skip
            cancelled = {
                "event": "calendar.event_cancelled",
                "data": series | {"series_id": cal.events[e3]["series_id"],
                                  "cancelled_instances": [api.instance(cal, e3)]},
            }  # fmt: skip
            created = {
                "event": "calendar.event_created",
                "data": series | {"series_id": cal.events[e5]["series_id"],
                                  "series_bot_scheduled": False,
                                  "instances": [api.instance(cal, e5)]},
            }  # fmt: skip
            for payload in (updated, cancelled, created, created, updated):  # resends too
                await post(hook, payload)
            await auto.idle()
            await asyncio.sleep(0.1)
            await auto.idle()

    assert writes(api) == [
        ("POST", e1), ("POST", e3), ("PATCH", e1), ("DELETE", e3), ("POST", e5), ("POST", e5)
    ]  # fmt: skip
    assert set(cal.bots) == {e1, taken, e5} and no_url not in cal.bots
    patch = cal.bots[e1]["streaming_config"]
    assert session_of_url(patch["output_url"]) == session  # the same session, new URLs
    assert expiry(patch["output_url"]) >= now + 5400 + TTL - 5
    retried = [r.at for r in api.requests if r.method == "POST" and r.body.get("event_id") == e5]
    assert retried[1] - retried[0] >= 1.0  # Retry-After honoured
    assert auto.booked[e1] == Booked(session, moved_start(moved), moved["meeting_url"])


def moved_start(event: dict) -> float:
    return CalendarEvent.from_v2(event).start


async def test_v1_sync_events_reads_the_affected_events(start_bridge):
    now = time.time()
    with FakeMeetingBaas() as api:
        cal = api.add_calendar()
        kept = api.put_event(cal, now + 3600)["event_id"]
        gone = api.put_event(cal, now + 3600)["event_id"]
        async with auto_joining(start_bridge, api, "v1", cal.calendar_id) as (_, auto, hook):
            await auto.idle()
            assert writes(api) == [("POST", kept), ("POST", gone)]
            body = cal.bots[kept]
            assert body["streaming_audio_frequency"] == "24khz"
            assert body["webhook_url"] == "https://bridge.example/webhooks/meetingbaas"
            assert expiry(body["streaming_output"]) >= now + 3600 + TTL - 5
            api.put_event(cal, now + 3600, event_id=gone, status="cancelled")
            sync = {
                "event": "calendar.sync_events",
                "data": {"calendar_id": cal.calendar_id, "last_updated_ts": "2026-05-01T10:00:00Z",
                         "affected_event_uuids": [kept, gone]},
            }  # fmt: skip
            v1 = {"x-meeting-baas-api-key": API_KEY}
            await post(hook, sync, headers=v1)
            await post(hook, sync, headers=v1)  # a retry: dropped as a duplicate
            refused = await asyncio.to_thread(
                deliver, hook, sync, headers={"x-meeting-baas-api-key": "wrong"}
            )
            assert refused.status_code == 401
            await auto.idle()
    assert writes(api) == [("POST", kept), ("POST", gone), ("DELETE", gone)]
    assert set(cal.bots) == {kept}


@pytest.mark.parametrize(
    ("event", "booked", "decision"),
    [
        (dict(meeting_url="https://m", start=100.0), None, "schedule"),
        (dict(meeting_url=None, start=100.0), None, None),
        (dict(meeting_url="https://m", start=100.0, bot_scheduled=True), None, None),
        (dict(meeting_url="https://m", start=1.0), None, None),
        (dict(meeting_url="https://m", start=200.0), Booked("s", 100.0, "https://m"), "move"),
        (dict(meeting_url="https://n", start=100.0), Booked("s", 100.0, "https://m"), "replace"),
        (dict(meeting_url=None, start=100.0), Booked("s", 100.0, "https://m"), None),
        (dict(meeting_url="https://m", start=100.0, cancelled=True), Booked("s", 100.0, "https://m"),
         "unschedule"),
        (dict(meeting_url="https://m", start=100.0, cancelled=True), None, None),
    ],
)  # fmt: skip
def test_decisions(event, booked, decision):
    fields = {"event_id": "e", "series_id": "s", "cancelled": False, "bot_scheduled": False}
    assert decide(CalendarEvent(**(fields | event)), booked, now=50.0) == decision
