"""POSTs on the WebSocket port: the bounded parser, and real sockets on a real server."""

import asyncio
import json

import httpx
import pytest
from websockets.asyncio.client import connect

from bridge.server.ingress import HttpRefusal, PostLimits, PostParser
from tests.fake_meetingbaas import status_change
from tests.helpers import session_of
from tests.server_process import ServerProcess

LIMITS = PostLimits(max_header_bytes=1024, max_body_bytes=64)
REQUEST = (
    b"POST /webhooks/meetingbaas?x=1 HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
    b'Content-Length: 11\r\nX-A: 1\r\nx-a: 2\r\n\r\n{"a": true}'
)


def test_a_request_fed_byte_by_byte():
    parser = PostParser(LIMITS)
    results = [parser.feed(REQUEST[i : i + 1]) for i in range(len(REQUEST))]
    assert results[:-1] == [None] * (len(REQUEST) - 1)
    request = results[-1]
    assert (request.path, request.target) == ("/webhooks/meetingbaas", "/webhooks/meetingbaas?x=1")
    assert request.headers["x-a"] == "1, 2" and request.body == b'{"a": true}'


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"POST / HTTP/1.1\r\n" + b"X: " + b"y" * 2000, 431),
        (b"POST / HTTP/1.1\r\nContent-Length: 65\r\n\r\n", 413),
        (b"POST / HTTP/1.1\r\nHost: h\r\n\r\n", 411),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\nab", 400),
        (b"POST nowhere HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\n bad: folded\r\nContent-Length: 0\r\n\r\n", 400),
    ],
    ids=["headers", "body", "no-length", "chunked", "bad-length", "extra", "target", "header"],
)
def test_what_breaks_http_or_the_bounds_is_refused(data, status):
    with pytest.raises(HttpRefusal) as info:
        PostParser(LIMITS).feed(data)
    assert info.value.status == status


async def raw_exchange(port: int, data: bytes, then: bytes = b"") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    if then:
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(then)
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return answer


async def test_posts_and_websockets_share_the_port(start_bridge):
    server = await start_bridge("echo", webhook_callback_secret="s3cr3t", webhook_timeout_s=0.5)
    url = f"http://127.0.0.1:{server.port}"
    async with httpx.AsyncClient() as http:
        assert (await http.post(f"{url}/elsewhere", content=b"{}")).status_code == 404
        body = json.dumps(status_change("b1", "joining_call")).encode()
        answer = await http.post(f"{url}/webhooks/meetingbaas", content=body,
                                 headers={"x-mb-secret": "s3cr3t"})  # fmt: skip
        assert (answer.status_code, answer.text) == (200, "ok\n")
        assert (await http.get(f"{url}/healthz")).text == "ok\n"  # GETs are still websockets'
    # the first bytes of a WebSocket handshake, split mid-"GET", still reach websockets
    async with connect(f"ws://127.0.0.1:{server.port}/bots/s1") as ws:
        await ws.send(json.dumps({"protocol_version": 2, "bot_id": "b1", "offset": 0.0}))
        await session_of(server, "s1")
    # Expect: 100-continue is answered before the body is sent
    head = (f"POST /webhooks/meetingbaas HTTP/1.1\r\nContent-Length: {len(body)}\r\n"
            "x-mb-secret: s3cr3t\r\nExpect: 100-continue\r\n\r\n").encode()  # fmt: skip
    answer = await raw_exchange(server.port, head, body)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")  # a duplicate of the first: 200 too
    # a POST that never finishes is cut at the deadline
    answer = await raw_exchange(server.port, b"POST /webhooks/meetingbaas HTTP/1.1\r\n")
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    # a socket that says nothing (or too little to tell) is closed at the deadline too
    assert await raw_exchange(server.port, b"PO") == b""
    assert server.ingress.open == set() and server.ingress.refused == 2


async def test_a_post_split_before_its_method_is_told_apart(start_bridge):
    server = await start_bridge("echo")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    for piece in (b"PO", b"ST /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n"):
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(0.05)
    assert (await asyncio.wait_for(reader.read(), 10)).startswith(b"HTTP/1.1 404 ")
    writer.close()


def test_the_served_process_takes_webhooks_on_its_port_under_uvloop():
    body = json.dumps(status_change("b9", "joining_call")).encode()
    with ServerProcess("--webhook-callback-secret", "cb") as server:
        url = f"http://127.0.0.1:{server.port}/webhooks/meetingbaas"
        assert httpx.post(url, content=body, headers={"x-mb-secret": "no"}).status_code == 401
        assert httpx.post(url, content=body, headers={"x-mb-secret": "cb"}).status_code == 200
        assert httpx.post(url, content=body, headers={"x-mb-secret": "cb"}).text == "duplicate\n"
        page = httpx.get(f"http://127.0.0.1:{server.port}/metrics").text
    assert 'speakbridge_webhooks_total{outcome="unauthorized"} 1.0' in page
    assert 'speakbridge_webhooks_total{outcome="accepted"} 1.0' in page
    assert 'speakbridge_webhooks_total{outcome="duplicate"} 1.0' in page
    assert 'speakbridge_bot_statuses_total{code="joining_call"} 1.0' in page
