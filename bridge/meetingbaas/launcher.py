"""`speakbridge launch`: give a new session signed URLs, send a bot there, remove it at the end."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from bridge.config import BridgeConfig
from bridge.meetingbaas.client import ApiVersion, BotSpec, MeetingBaasClient
from bridge.meetingbaas.lifecycle import REASON_PREFIX, SESSION_KEY, WEBHOOK_PATH
from bridge.server.server import BridgeServer
from bridge.server.session import Session
from bridge.wire.protocol import PathRole
from bridge.wire.signing import redact_token, signed_url

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionUrls:
    """The streaming URLs of one session, as the bot is given them."""

    session_id: str
    output_url: str  # the bot sends the meeting's audio here
    input_url: str  # the bot plays what it receives here


def session_urls(
    config: BridgeConfig,
    split: bool,
    session_id: str | None = None,
    joins_at: float | None = None,
) -> SessionUrls:
    """URLs for a new session under config.public_url (the load balancer's, with several
    bridges or workers),
    signed when config has a secret: valid for token_ttl_s from joins_at (Unix s; default now),
    so a bot scheduled for later still gets in, and stays for a meeting of that length."""
    if not config.public_url:
        raise ValueError("--public-url is needed: the ws:// or wss:// address the bot can reach")
    session_id = session_id or uuid.uuid4().hex
    secret = config.secret.get_secret_value() if config.secret else None
    query = {"rate": str(config.rate)}
    base = config.public_url

    ttl_s = config.token_ttl_s + max(0.0, (joins_at or 0.0) - time.time())

    def url(role: PathRole) -> str:
        return signed_url(base, secret, session_id, role, query, ttl_s)

    if split:
        return SessionUrls(session_id, url("output"), url("input"))
    both = url("dual")
    return SessionUrls(session_id, both, both)


def webhook_url(config: BridgeConfig, session_id: str) -> str:
    """The bridge's webhook receiver under --public-url (http for ws, https for wss): the
    load balancer's address, with several bridges or workers."""
    if not config.public_url:
        raise ValueError("--public-url is needed: the address Meeting BaaS can reach")
    base = config.public_url
    scheme, sep, rest = base.partition("://")
    http = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    return f"{http}{sep}{rest.rstrip('/')}{WEBHOOK_PATH}"


def tied_to_session(
    spec: BotSpec,
    config: BridgeConfig,
    session_id: str,
    api_version: ApiVersion,
) -> tuple[BotSpec, list[str]]:
    """spec with the session id in its `extra` (echoed in every webhook) and, unless the user
    gave a webhook URL, this bridge's: v1 webhook_url (every event, carrying the API key the
    bridge checks), v2 callback_config (completed and failed, with the callback secret).
    Returns it with notes for the user on what else to configure."""
    extra: dict[str, Any] = {**(spec.extra or {}), SESSION_KEY: session_id}
    update: dict[str, Any] = {"extra": extra}
    notes: list[str] = []
    if spec.webhook_url is None and config.public_url:
        url = webhook_url(config, session_id)
        secret = config.webhook_callback_secret
        if api_version == "v1":
            update["webhook_url"] = url
        elif api_version == "v2" and secret is not None:
            update |= {"webhook_url": url, "webhook_secret": secret}
        elif api_version == "v2":
            notes.append(
                "no --webhook-callback-secret: the bot's completed/failed callbacks are not "
                "sent to this bridge"
            )
        if api_version == "v2":
            notes.append(
                f"status events (admitted, call ended) come only through account webhooks: add "
                f"{url.split('?')[0]} as an endpoint in the Meeting BaaS dashboard and give "
                "its signing secret (whsec_...) to serve as --webhook-svix-secret"
            )
    return spec.model_copy(update=update), notes


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
    session_id's session ended on purpose (a control `leave`, a webhook's call_ended)
    removes the bot too, and the bot's webhooks reach it by the bot id the API returned.
    """
    gone: list[str] = []  # the bot left by itself: its webhook ended the session

    def ended(session: Session) -> None:
        if session.left and session.id == session_id:
            if (session.end_reason or "").startswith(REASON_PREFIX):
                gone.append(session.end_reason or "")
            stop.set()

    if server is not None:
        server.sessions.on_end.append(ended)
        await server.start()
        print(server.banner(), flush=True)
    try:
        bot_id = await client.create_bot(spec)
        if server is not None and session_id is not None:
            server.bots.expect(bot_id, session_id)
        print(f"bot {bot_id} is joining {spec.meeting_url}", flush=True)
        print(f"  streaming output (meeting audio): {redact_token(spec.output_url)}", flush=True)
        print(f"  streaming input (bot playback):   {redact_token(spec.input_url)}", flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), leave_after_s)
        if gone:
            print(f"bot {bot_id} has left ({gone[0]})", flush=True)
            return bot_id
        print(f"removing bot {bot_id}", flush=True)
        await client.remove_bot(bot_id)
        return bot_id
    finally:
        if server is not None:
            await server.close()
