"""Signed URLs and handshake limits: unit rules, then through a real server."""

import asyncio
import logging
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from bridge.server.limits import FailureLimiter
from bridge.wire.protocol import RouteError
from bridge.wire.signing import LISTING_ROLE, listing_url, sign, signed_url, verify

SECRET = "correct horse battery staple"


def test_a_valid_token_verifies():
    token = sign(SECRET, "s1", "output", int(time.time()) + 60)
    verify(SECRET, token, "s1", "output", time.time())


@pytest.mark.parametrize(
    ("token", "session", "role", "status", "why"),
    [
        (None, "s1", "dual", 401, "requires a signed URL"),
        ("", "s1", "dual", 401, "requires a signed URL"),
        ("garbage", "s1", "dual", 403, "malformed"),
        ("99999999999." + "0" * 32, "s1", "dual", 403, "invalid token"),
        (sign("another secret", "s1", "dual", 99999999999), "s1", "dual", 403, "invalid token"),
        (sign(SECRET, "s1", "output", 99999999999), "s1", "input", 403, "invalid token"),
        (sign(SECRET, "s1", "dual", 99999999999), "s2", "dual", 403, "invalid token"),
        (sign(SECRET, "s1", "dual", 1000), "s1", "dual", 403, "expired"),
    ],
    ids=[
        "missing",
        "empty",
        "malformed",
        "forged",
        "other-secret",
        "wrong-role",
        "other-session",
        "expired",
    ],
)
def test_bad_tokens(token, session, role, status, why):
    with pytest.raises(RouteError, match=why) as info:
        verify(SECRET, token, session, role, time.time())
    assert info.value.status == status


FAR = 99999999999


@pytest.mark.parametrize(
    "token",
    [
        "\u00b2." + "0" * 32,  # superscript two: str.isdigit() says yes, int() raises
        "9" * 4300 + "." + "0" * 32,  # past int()'s digit limit
        "\u0661\u0662\u0663." + "0" * 32,  # Arabic-Indic digits
        "+" + sign(SECRET, "s1", "dual", FAR),
        " " + sign(SECRET, "s1", "dual", FAR),
        "0" + sign(SECRET, "s1", "dual", FAR),  # the same expiry, spelled another way
        "99_999_999_999." + sign(SECRET, "s1", "dual", FAR).split(".")[1],
        sign(SECRET, "s1", "dual", FAR).upper(),
    ],
    ids=[
        "superscript",
        "4300-digits",
        "arabic-indic",
        "plus",
        "space",
        "zero",
        "underscore",
        "upper-hex",
    ],
)
def test_an_expiry_has_one_spelling_and_anything_else_is_malformed(token):
    with pytest.raises(RouteError, match="malformed token") as info:
        verify(SECRET, token, "s1", "dual", time.time())
    assert info.value.status == 403


def test_the_listing_token_admits_no_sessions_control_channel():
    listing = listing_url("http://h", SECRET, 60).split("token=")[1]
    verify(SECRET, listing, "", LISTING_ROLE, time.time())
    for session in ("sessions", "listing", "s1"):
        with pytest.raises(RouteError, match="invalid token"):
            verify(SECRET, listing, session, "control", time.time())
    control_of_sessions = sign(SECRET, "sessions", "control", FAR)
    with pytest.raises(RouteError, match="invalid token"):
        verify(SECRET, control_of_sessions, "", LISTING_ROLE, time.time())


def test_signed_url_shape():
    url = signed_url("wss://b.example/", SECRET, "s1", "input", {"rate": "16000"}, 60)
    assert url.startswith("wss://b.example/bots/s1/input?rate=16000&token=")
    assert signed_url("ws://h:1", None, "s1", "dual", {}, 60) == "ws://h:1/bots/s1"


def test_failure_limiter_window_and_bounded_memory():
    limiter = FailureLimiter(limit=3, window_s=10, max_addresses=2)
    for t in (0, 1, 2):
        assert not limiter.blocked("a", t)
        limiter.record_failure("a", t)
    assert limiter.blocked("a", 5)
    assert not limiter.blocked("a", 10.5)  # the oldest failure left the window
    limiter.record_failure("b", 11)
    limiter.record_failure("c", 12)  # a is forgotten: only two addresses are kept
    assert not limiter.blocked("a", 12) and len(limiter._failures) == 2


async def status_of(url: str) -> int:
    with pytest.raises(InvalidStatus) as info:
        async with connect(url):
            pass
    return info.value.response.status_code


async def test_server_refuses_bad_tokens_before_the_upgrade(start_bridge, caplog):
    server = await start_bridge(secret=SECRET)
    base = f"ws://127.0.0.1:{server.port}"
    forged = "99999999999." + "f" * 32
    with caplog.at_level(logging.WARNING, logger="bridge"):
        assert await status_of(f"{base}/bots/s1") == 401
        assert await status_of(f"{base}/bots/s1?token={forged}") == 403
        expired = signed_url(base, SECRET, "s1", "dual", {}, -10)
        assert await status_of(expired) == 403
        wrong_role = signed_url(base, SECRET, "s1", "output", {}, 60).replace("/output", "/input")
        assert await status_of(wrong_role) == 403
    assert not server.sessions.sessions
    assert all(
        "token=" not in r.getMessage() and forged not in r.getMessage() for r in caplog.records
    )


async def test_a_valid_token_works_across_a_reconnect(start_bridge):
    server = await start_bridge(secret=SECRET)
    url = signed_url(f"ws://127.0.0.1:{server.port}", SECRET, "s1", "dual", {"rate": "16000"}, 60)
    for _ in range(2):
        async with connect(url) as ws:
            await ws.send(b"\x00" * 640)
            await asyncio.sleep(0.05)
    session = server.sessions.sessions["s1"]
    assert session.stats.sockets == 2 and session.stats.bytes_in == 1280
    assert session.sample_rate == 16000


async def test_repeated_failures_get_429_even_with_a_valid_token(start_bridge):
    server = await start_bridge(secret=SECRET, handshake_failures=3)
    base = f"ws://127.0.0.1:{server.port}"
    for _ in range(3):
        assert await status_of(f"{base}/bots/s1") == 401
    assert await status_of(signed_url(base, SECRET, "s1", "dual", {}, 60)) == 429
    assert server.limiter.refused == 1


async def test_odd_expiries_get_403_not_500_through_the_server(start_bridge):
    server = await start_bridge(secret=SECRET)
    base = f"ws://127.0.0.1:{server.port}/bots/s1?token="
    for expiry in ("%C2%B2", "9" * 4300):  # "²", and 4,300 digits
        assert await status_of(f"{base}{expiry}.{'0' * 32}") == 403
    assert server.totals.refused == {403: 2}


async def test_without_a_secret_the_server_warns(start_bridge, caplog):
    with caplog.at_level(logging.WARNING, logger="bridge"):
        await start_bridge()
    assert any("anyone who can reach" in r.getMessage() for r in caplog.records)
