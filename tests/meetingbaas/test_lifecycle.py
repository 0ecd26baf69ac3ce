"""A speaking bot's lifecycle from Meeting BaaS webhooks, end to end on loopback.

Launch through the fake API, a bot streaming real audio to the signed URLs it was given,
SVIX-signed statuses (signed by the svix library) to the bridge's port: admitted, in the
call, call ended (the session ends at once), then the completed data in the recorder's
timeline and its transcript and audio downloaded from a real local file server.
"""

import asyncio
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bridge.config import BridgeConfig
from bridge.meetingbaas.artifacts import ArtifactFetcher
from bridge.meetingbaas.client import BotSpec, MeetingBaasClient
from bridge.meetingbaas.launcher import session_urls, tied_to_session
from bridge.retry import RetryPolicy
from bridge.wire.protocol import CloseCode
from tests.fake_meetingbaas import (
    API_KEY,
    SVIX_SECRET,
    FakeMeetingBaas,
    completed,
    deliver,
    failed,
    status_change,
    svix_headers,
)
from tests.helpers import Control, eventually
from tests.sounds import ALSA, recording

CALLBACK_SECRET = "cb-s3cr3t"
TRANSCRIPT = json.dumps({"bot_id": "bot-1", "provider": "gladia", "result": {"utterances": []}})
AUDIO = (ALSA / "Front_Center.wav").read_bytes()  # real bytes, whatever the container


class FileServer:
    """A local file server standing in for presigned S3 URLs; fails the first `flaky` GETs."""

    def __init__(self, files: dict[str, bytes], flaky: int = 0) -> None:
        self.files, self.flaky, self.gets = files, flaky, 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.gets += 1
                path = self.path.split("?")[0]
                if server.flaky > 0:
                    server.flaky -= 1
                    self.send_response(503)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                data = server.files.get(path)
                self.send_response(200 if data is not None else 404)
                self.send_header("content-length", str(len(data or b"")))
                self.end_headers()
                self.wfile.write(data or b"")

            def log_message(self, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def files():
    server = FileServer({"/t.json": TRANSCRIPT.encode(), "/a.flac": AUDIO}, flaky=1)
    yield server
    server.close()


async def post(url: str, payload: dict, **kw) -> httpx.Response:
    return await asyncio.to_thread(deliver, url, payload, **kw)


async def launched(server, api: FakeMeetingBaas) -> tuple[str, str, BotSpec]:
    """What `speakbridge launch` does: signed URLs, the bot tied to its session, created."""
    config = server.config.model_copy(update={"public_url": f"ws://127.0.0.1:{server.port}"})
    urls = session_urls(config, split=False)
    spec = BotSpec(
        meeting_url="https://meet.google.com/abc-defg-hij",
        output_url=urls.output_url,
        input_url=urls.input_url,
    )
    spec, notes = tied_to_session(spec, config, urls.session_id, "v2")
    assert any("--webhook-svix-secret" in note for note in notes)
    async with MeetingBaasClient(API_KEY, "v2", api.url) as client:
        bot_id = await client.create_bot(spec)
    server.bots.expect(bot_id, urls.session_id)
    return bot_id, urls.session_id, spec


async def stream(ws, seconds: float) -> None:
    """Real audio at real time, 20 ms chunks, as a bot sends it."""
    pcm = recording("Front_Center", 24000)
    chunk = 480
    for start in range(0, int(seconds * 24000), chunk):
        await ws.send(pcm[start % len(pcm) : start % len(pcm) + chunk].tobytes())
        await asyncio.sleep(0.02)


async def test_launch_statuses_call_ended_then_completed_data(start_bridge, tmp_path, files):
    server = await start_bridge(
        "echo,recorder",
        (f"recorder.dir={tmp_path / 'rec'}",),
        webhook_svix_secret=SVIX_SECRET,
        webhook_callback_secret=CALLBACK_SECRET,
        grace_s=30.0,
    )
    fetcher = ArtifactFetcher(tmp_path / "artifacts", 1 << 20, 4, RetryPolicy(3, 0.05))
    server.webhooks.on_final = fetcher.fetch
    hook = f"http://127.0.0.1:{server.port}/webhooks/meetingbaas"
    with FakeMeetingBaas() as api:
        bot_id, session_id, spec = await launched(server, api)
        body = api.bots[bot_id]
        assert body["callback_config"] == {"url": hook, "method": "POST", "secret": CALLBACK_SECRET}
        assert body["extra"] == {"speakbridge_session": session_id}

    # a status before the bot connects waits for its session
    assert (await post(hook, status_change(bot_id, "joining_call"))).text == "ok\n"
    async with await connect(spec.output_url, compression=None) as ws:
        await in_the_call(server, hook, ws, bot_id, session_id, spec, files, fetcher, tmp_path)


async def in_the_call(server, hook, ws, bot_id, session_id, spec, files, fetcher, tmp_path):
    await ws.send(json.dumps({"protocol_version": 2, "bot_id": bot_id, "offset": 0.0}))
    await eventually(lambda: server.sessions.sessions.get(session_id))
    control = await Control.open(server, session_id)
    try:
        await statuses(
            server, hook, ws, bot_id, session_id, spec, files, fetcher, tmp_path, control
        )
    finally:
        await control.close()
        await fetcher.close()


async def statuses(server, hook, ws, bot_id, session_id, spec, files, fetcher, tmp_path, control):
    session = server.sessions.sessions[session_id]
    await eventually(lambda: server.bots.status_of(session_id))
    async with httpx.AsyncClient() as http:
        listing = (await http.get(f"http://127.0.0.1:{server.port}/sessions")).json()
    assert listing[0]["bot_status"]["code"] == "joining_call"

    await post(hook, status_change(bot_id, "in_waiting_room"))
    admitted = status_change(bot_id, "in_call_recording", start_time=1777629605)
    headers = svix_headers(json.dumps(admitted).encode(), msg_id="msg_admitted")
    assert (await post(hook, admitted, headers=headers)).text == "ok\n"
    assert (await post(hook, admitted, headers=headers)).text == "duplicate\n"  # a retry
    status = await control.wait_event("bot_status", code="in_call_recording")
    assert status["start_time"] == 1777629605 and status["bot_id"] == bot_id
    await control.wait_event("joined", cause="webhook")  # before any meeting audio
    assert session.phase == "in_call"
    streaming = asyncio.create_task(stream(ws, 30))

    # forged and stale deliveries change nothing
    ended = status_change(bot_id, "call_ended")
    forged = svix_headers(json.dumps(ended).encode(), secrets=("whsec_QUJDREVGR0hJSktMTU5PUA==",))
    assert (await post(hook, ended, headers=forged)).status_code == 401
    stale = svix_headers(json.dumps(ended).encode(), sent_at=0)
    assert (await post(hook, ended, headers=stale)).status_code == 401
    await asyncio.sleep(0.3)
    assert not session.ended

    # call_ended ends the session now, not after the grace period; a reconnect is refused
    assert (await post(hook, ended)).text == "ok\n"
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(5):
            await streaming
    assert closed.value.rcvd.code == CloseCode.SESSION_ENDED
    assert "call_ended" in await eventually(lambda: session.end_reason)
    assert session.left  # ended on purpose
    with pytest.raises(InvalidStatus) as refused:
        await connect(spec.output_url)
    assert refused.value.response.status_code == 410
    # (joining_call was applied at the hello, before this control client subscribed)
    codes = [e["code"] for e in control.of_type("bot_status")]
    assert codes == ["in_waiting_room", "in_call_recording", "call_ended"]

    # the final data, minutes later, by the per-bot callback
    final = completed(bot_id, f"{files.url}/a.flac?X-Amz-Signature=s", f"{files.url}/t.json")
    final["extra"] = {"speakbridge_session": session_id}
    answer = await post(hook, final, headers={"x-mb-secret": CALLBACK_SECRET})
    assert answer.text == "ok\n"
    await eventually(lambda: fetcher.saved and fetcher._queue.empty() and len(fetcher.saved) == 2)
    await fetcher.join()
    folder = tmp_path / "artifacts" / session_id
    assert (folder / "transcription.json").read_text() == TRANSCRIPT
    assert (folder / "audio.flac").read_bytes() == AUDIO
    assert not list(folder.glob("*.part")) and files.gets == 3  # one 503, retried
    timeline = tmp_path / "rec" / session_id / "timeline.jsonl"
    events = [json.loads(line) for line in timeline.read_text().splitlines()]
    kinds = [e["type"] for e in events]
    assert kinds.index("bot_status") < kinds.index("session_end") < kinds.index("bot_completed")
    codes = [e["code"] for e in events if e["type"] == "bot_status"]
    assert codes == ["joining_call", "in_waiting_room", "in_call_recording", "call_ended"]
    done = events[kinds.index("bot_completed")]
    assert [p["name"] for p in done["participants"]] == ["Ana", "Bo"]
    assert done["duration_seconds"] == 1820 and done["artifacts"]["audio"].startswith(files.url)


async def test_a_failed_bot_ends_its_session_with_the_error_code(start_bridge, caplog):
    server = await start_bridge("echo", webhook_svix_secret=SVIX_SECRET)
    hook = f"http://127.0.0.1:{server.port}/webhooks/meetingbaas"
    ws = await connect(f"ws://127.0.0.1:{server.port}/bots/s-fail")
    await ws.send(json.dumps({"protocol_version": 2, "bot_id": "bot-9", "offset": 0.0}))
    session = await eventually(lambda: server.sessions.sessions.get("s-fail"))
    await eventually(lambda: server.bots.bound.get("bot-9"))
    with caplog.at_level(logging.INFO, "bridge"):
        message = "the bot could not open its streaming sockets"
        await post(hook, failed("bot-9", "STREAMING_SETUP_FAILED", message))
        await eventually(lambda: session not in server.sessions.sessions.values())
    assert session.end_reason.startswith("Meeting BaaS: bot.failed STREAMING_SETUP_FAILED")
    summary = [r.getMessage() for r in caplog.records if "ended (" in r.getMessage()]
    assert summary and "STREAMING_SETUP_FAILED" in summary[0]
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 5)


async def test_statuses_for_unknown_bots_are_bounded(start_bridge):
    server = await start_bridge(
        "echo", webhook_svix_secret=SVIX_SECRET, webhook_pending_bots=3, webhook_pending_per_bot=2
    )
    hook = f"http://127.0.0.1:{server.port}/webhooks/meetingbaas"
    for bot in range(5):
        for code in ("queued", "joining_call", "in_waiting_room"):
            await post(hook, status_change(f"ghost-{bot}", code))
    await eventually(lambda: server.webhooks.statuses["in_waiting_room"] == 5)
    assert list(server.bots.pending) == ["ghost-2", "ghost-3", "ghost-4"]
    assert all(len(kept) == 2 for kept in server.bots.pending.values())
    assert server.bots.pending_dropped == 5 + 2 * 2  # one per bot over 2, two bots forgotten


def test_the_webhook_url_follows_the_public_url():
    from bridge.meetingbaas.launcher import webhook_url

    config = BridgeConfig(public_url="wss://bridge.example:8443")
    assert webhook_url(config, "s") == "https://bridge.example:8443/webhooks/meetingbaas"
    workers = BridgeConfig(public_url="ws://h:9000", port=9000, workers=4)
    assert webhook_url(workers, "abc").startswith("http://h:90")
