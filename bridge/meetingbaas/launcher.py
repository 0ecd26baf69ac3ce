"""`speakbridge launch`: give a new session signed URLs, send a bot there, remove it at the end."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass

from bridge.config import BridgeConfig
from bridge.meetingbaas.client import BotSpec, MeetingBaasClient
from bridge.server.server import BridgeServer
from bridge.wire.protocol import PathRole
from bridge.wire.signing import signed_url

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionUrls:
    """The streaming URLs of one session, as the bot is given them."""

    session_id: str
    output_url: str  # the bot sends the meeting's audio here
    input_url: str  # the bot plays what it receives here


def session_urls(config: BridgeConfig, split: bool, session_id: str | None = None) -> SessionUrls:
    """URLs for a new session under config.public_url (the load balancer's, with several
    bridges or workers), signed when config has a secret."""
    if not config.public_url:
        raise ValueError("--public-url is needed: the ws:// or wss:// address the bot can reach")
    session_id = session_id or uuid.uuid4().hex
    secret = config.secret.get_secret_value() if config.secret else None
    query = {"rate": str(config.rate)}
    base = config.public_url

    def url(role: PathRole) -> str:
        return signed_url(base, secret, session_id, role, query, config.token_ttl_s)

    if split:
        return SessionUrls(session_id, url("output"), url("input"))
    both = url("dual")
    return SessionUrls(session_id, both, both)


async def launch(
    client: MeetingBaasClient,
    spec: BotSpec,
    stop: asyncio.Event,
    leave_after_s: float | None = None,
    server: BridgeServer | None = None,
    session_id: str | None = None,
) -> str:
    """Create the bot, wait for stop (or leave_after_s), then remove it; returns its bot id.

    With a server, it is started first (so the bot finds it) and closed at the end; a
    session_id's session ended on purpose (a control `leave`) removes the bot too.
    """
    if server is not None:
        server.sessions.on_end.append(lambda s: s.left and s.id == session_id and stop.set())
        await server.start()
        print(server.banner(), flush=True)
    try:
        bot_id = await client.create_bot(spec)
        print(f"bot {bot_id} is joining {spec.meeting_url}", flush=True)
        print(f"  streaming output (meeting audio): {_redact(spec.output_url)}", flush=True)
        print(f"  streaming input (bot playback):   {_redact(spec.input_url)}", flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), leave_after_s)
        print(f"removing bot {bot_id}", flush=True)
        await client.remove_bot(bot_id)
        return bot_id
    finally:
        if server is not None:
            await server.close()


def _redact(url: str) -> str:
    head, sep, token = url.partition("token=")
    return head + sep + ("…" if token else "")
