"""`speakbridge schedule`, `scheduled` and `calendar ...` run as a user runs them (fake API)."""

import subprocess
import sys
import time
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from bridge.meetingbaas.schedules import join_time
from tests.fake_meetingbaas import API_KEY, FakeMeetingBaas

MEETING = "https://meet.google.com/abc-defg-hij"
TTL = 7200


def speakbridge(api: FakeMeetingBaas, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args, "--api-base-url", api.url],
        capture_output=True,
        text=True,
        timeout=30,
        env={"MEETING_BAAS_API_KEY": API_KEY, "PATH": "/usr/bin:/bin"},
    )


def expiry(url: str) -> int:
    return int(parse_qs(urlsplit(url).query)["token"][0].split(".")[0])


BRIDGE = ("--public-url", "wss://bridge.example", "--secret", "s", "--token-ttl-s", str(TTL))


def test_schedule_v2_signs_urls_from_the_join_time_then_list_and_cancel():
    with FakeMeetingBaas() as api:
        done = speakbridge(api, "schedule", MEETING, "--at", "+2h", *BRIDGE,
                           "--webhook-callback-secret", "cb")  # fmt: skip
        assert done.returncode == 0, done.stderr
        (request,) = api.requests
        assert (request.method, request.path) == ("POST", "/v2/bots/scheduled")
        join_at = datetime.fromisoformat(request.body["join_at"].replace("Z", "+00:00"))
        assert abs(join_at.timestamp() - (time.time() + 7200)) < 30
        output = request.body["streaming_config"]["output_url"]
        assert expiry(output) >= join_at.timestamp() + TTL - 1  # valid from the join, not now
        assert request.body["callback_config"]["secret"] == "cb"
        assert "bot bot-1 joins" in done.stdout and "account webhooks" in done.stdout

        listing = speakbridge(api, "scheduled")
        assert listing.returncode == 0, listing.stderr
        assert listing.stdout.startswith("bot-1  ") and MEETING in listing.stdout
        assert speakbridge(api, "scheduled", "--cancel", "bot-1").returncode == 0
        assert api.bots["bot-1"]["status"] == "cancelled"
        again = speakbridge(api, "scheduled", "--cancel", "bot-1")
        assert again.returncode == 1 and "409" in again.stderr


def test_schedule_v1_sends_start_time_in_seconds_and_reserved():
    with FakeMeetingBaas() as api:
        done = speakbridge(api, "schedule", MEETING, "--at", "+30m", "--api-version", "v1", *BRIDGE)
        assert done.returncode == 0, done.stderr
        body = api.requests[0].body
        assert body["reserved"] is True and abs(body["start_time"] - (time.time() + 1800)) < 30
        assert body["webhook_url"] == "https://bridge.example/webhooks/meetingbaas"
        assert expiry(body["streaming"]["output"]) >= body["start_time"] + TTL - 1
        listing = speakbridge(api, "scheduled", "--api-version", "v1")
        assert listing.returncode == 2 and "no list of scheduled bots" in listing.stderr


def test_a_join_time_in_the_past_is_refused_before_any_request():
    with FakeMeetingBaas() as api:
        done = speakbridge(api, "schedule", MEETING, "--at", "2020-01-01T00:00:00Z", *BRIDGE)
        assert done.returncode == 2 and "in the past" in done.stderr and api.requests == []


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("+10m", 600), ("+1h30m", 5400), ("+2d", 172800), ("+45s", 45),
     ("2026-01-01T00:10:00Z", 600), ("2026-01-01T01:10:00+01:00", 600),
     ("2026-01-01T00:10:00", 600)],
)  # fmt: skip
def test_join_times(text, seconds):
    now = datetime.fromisoformat("2026-01-01T00:00:00+00:00").timestamp()
    assert join_time(text, now) == now + seconds


@pytest.mark.parametrize("text", ["+", "soon", "+91d"])
def test_bad_join_times(text):
    with pytest.raises(ValueError, match="--at"):
        join_time(text, 1.8e9)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_calendar_commands(version):
    oauth = ("--platform", "google", "--oauth-client-id", "id", "--oauth-client-secret", "sec",
             "--oauth-refresh-token", "tok")  # fmt: skip
    flag = ("--api-version", version)
    with FakeMeetingBaas() as api:
        done = speakbridge(api, "calendar", "connect", *oauth, *flag)
        assert done.returncode == 0, done.stderr
        (cal,) = api.calendars.values()
        assert f"calendar {cal.calendar_id} connected" in done.stdout
        if version == "v2":  # the primary calendar was picked from list-raw
            assert api.requests[-1].body["raw_calendar_id"] == "primary-raw"
        listing = speakbridge(api, "calendar", "list", *flag)
        assert listing.stdout.startswith(cal.calendar_id)
        event = api.put_event(cal, time.time() + 3600, title="planning")["event_id"]
        events = speakbridge(api, "calendar", "events", cal.calendar_id, *flag)
        assert events.returncode == 0, events.stderr
        assert event in events.stdout and "planning" in events.stdout
        booked = speakbridge(api, "calendar", "schedule", cal.calendar_id, event, *flag, *BRIDGE)
        assert booked.returncode == 0, booked.stderr
        assert event in cal.bots and "a bot joins 'planning'" in booked.stdout
        bot = cal.bots[event]
        output = bot.get("streaming_output") or bot["streaming_config"]["output_url"]
        assert expiry(output) >= time.time() + 3600 + TTL - 30
        gone = speakbridge(api, "calendar", "unschedule", cal.calendar_id, event, *flag)
        assert gone.returncode == 0, gone.stderr
        assert cal.bots == {}
