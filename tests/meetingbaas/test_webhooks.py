"""Verifying and reading Meeting BaaS deliveries: signatures made by the svix library itself."""

import json
import time

import pytest

from bridge.meetingbaas.webhooks import (
    BadDelivery,
    BotFinal,
    BotStatus,
    CalendarNotice,
    RecentKeys,
    Unauthorized,
    Verifier,
    delivery_key,
    parse_notice,
)
from tests.fake_meetingbaas import API_KEY, SVIX_SECRET, completed, status_change, svix_headers

OTHER_SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
BODY = json.dumps(status_change("b1", "in_call_recording", start_time=1777629605)).encode()


def verifier(**kw) -> Verifier:
    return Verifier.from_settings(kw.get("svix", SVIX_SECRET), kw.get("callback"), kw.get("key"))


def test_a_svix_signed_delivery_is_accepted_under_both_header_names():
    now = time.time()
    assert verifier().verify(svix_headers(BODY), BODY, now) == "svix"
    assert verifier().verify(svix_headers(BODY, prefix="webhook"), BODY, now) == "svix"


@pytest.mark.parametrize(
    ("headers", "body", "why"),
    [
        ({"signed_by": (OTHER_SECRET,)}, BODY, "no SVIX signature matches"),
        ({"signed_by": (SVIX_SECRET,)}, BODY.replace(b"b1", b"b2"), "no SVIX signature matches"),
        ({"sent_at": -301}, BODY, "stale"),
        ({"sent_at": 301}, BODY, "stale"),
        ({"content-type": "application/json"}, BODY, "unsigned"),
        ({"svix-id": "msg_1", "svix-signature": "v1,abc"}, BODY, "missing SVIX"),
    ],
    ids=["forged", "tampered", "stale", "from-the-future", "unsigned", "no-timestamp"],
)
def test_forged_stale_and_unsigned_deliveries_are_refused(headers, body, why):
    if "sent_at" in headers:  # signed now, this far from now
        headers = svix_headers(BODY, sent_at=time.time() + headers["sent_at"])
    elif "signed_by" in headers:  # signed now (at collection, it would be stale by the run)
        headers = svix_headers(BODY, secrets=headers["signed_by"])
    with pytest.raises(Unauthorized, match=why):
        verifier().verify(headers, body, time.time())


def test_rotation_either_side():
    # SVIX signs with the old and the new secret while the endpoint's secret rotates
    both = svix_headers(BODY, secrets=(OTHER_SECRET, SVIX_SECRET))
    assert verifier().verify(both, BODY, time.time()) == "svix"
    # and the bridge may accept two secrets while its operator rotates
    two = verifier(svix=f"{OTHER_SECRET},{SVIX_SECRET}")
    assert two.verify(svix_headers(BODY, secrets=(OTHER_SECRET,)), BODY, time.time()) == "svix"
    assert two.verify(svix_headers(BODY), BODY, time.time()) == "svix"


def test_callbacks_and_v1_carry_their_secret_verbatim():
    v = verifier(svix=None, callback="s3cr3t", key=API_KEY)
    assert v.verify({"x-mb-secret": "s3cr3t"}, BODY, 0) == "callback"
    assert v.verify({"x-meeting-baas-api-key": API_KEY}, BODY, 0) == "v1"
    for headers in ({"x-mb-secret": "s3cr3"}, {"x-meeting-baas-api-key": "nope"}):
        with pytest.raises(Unauthorized, match="wrong"):
            v.verify(headers, BODY, 0)
    with pytest.raises(Unauthorized, match="no --webhook-svix-secret"):
        v.verify(svix_headers(BODY), BODY, time.time())


def test_a_bad_secret_is_a_clear_error():
    with pytest.raises(ValueError, match="whsec_ followed by base64"):
        Verifier.from_settings("whsec_***", None, None)


def test_status_change_both_places_of_extra():
    notice = parse_notice(BODY)
    assert isinstance(notice, BotStatus)
    assert (notice.bot_id, notice.code, notice.fields) == ("b1", "in_call_recording",
                                                          {"start_time": 1777629605})  # fmt: skip
    data = {"bot_id": "b1", "status": {"code": "call_ended"}, "extra": {"s": 1}}
    prose = {"event": "bot.status_change", "data": data}
    assert parse_notice(json.dumps(prose).encode()).extra == {"s": 1}


def test_v1_final_events_read_as_v2():
    complete = {"event": "complete", "data": {"bot_id": "b1", "mp4": "https://x/v.mp4",
                "speakers": ["Ana"], "event": "complete", "extra": {"k": 2}}}  # fmt: skip
    notice = parse_notice(json.dumps(complete).encode())
    assert isinstance(notice, BotFinal) and notice.kind == "bot.completed"
    assert notice.artifacts() == {"video": "https://x/v.mp4"} and notice.extra == {"k": 2}
    fail = {"event": "failed", "data": {"bot_id": "b1", "error": "BotRemoved", "message": "x"}}
    notice = parse_notice(json.dumps(fail).encode())
    assert (notice.kind, notice.error_code, notice.error_message) == (
        "bot.failed",
        "BotRemoved",
        "x",
    )


def test_v2_completed_urls_and_calendar_events():
    notice = parse_notice(json.dumps(completed("b1", "https://a/x.flac", None)).encode())
    assert notice.artifacts() == {"audio": "https://a/x.flac"}
    sync = {"event": "calendar.sync_events",
            "data": {"calendar_id": "c1", "affected_event_uuids": ["e1"]}}  # fmt: skip
    assert parse_notice(json.dumps(sync).encode()) == CalendarNotice(
        "calendar.sync_events", "c1", sync["data"]
    )


@pytest.mark.parametrize(
    ("body", "why"),
    [(b"not json", "not JSON"), (b"[]", "no `event`"), (b'{"event": "bot.failed"}', "no `data`"),
     (b'{"event": "bot.failed", "data": {}}', "no bot_id"),
     (b'{"event": "calendar.event_created", "data": {}}', "no calendar_id")],
)  # fmt: skip
def test_what_is_not_an_event_is_refused(body, why):
    with pytest.raises(BadDelivery, match=why):
        parse_notice(body)


def test_duplicates_by_svix_id_and_by_content_within_a_bounded_window():
    notice = parse_notice(BODY)
    headers = svix_headers(BODY, msg_id="msg_42")
    assert delivery_key("svix", headers, notice) == "svix:msg_42"
    assert delivery_key("v1", {}, notice).startswith("status:b1:in_call_recording:")
    recent = RecentKeys(capacity=2, window_s=10)
    assert not recent.seen("a", now=0) and recent.seen("a", now=5)
    assert not recent.seen("a", now=16)  # out of the window: new again
    recent.seen("b", now=16)
    recent.seen("c", now=16)  # over capacity: the oldest ("a") is forgotten
    assert not recent.seen("a", now=17)
