"""The WebSocket server: routes each request to its session before the upgrade, pumps frames."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import time
import uuid
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from bridge.config import BridgeConfig
from bridge.logs import session_context
from bridge.server.control import serve_control
from bridge.server.limits import FailureLimiter
from bridge.server.metrics import BridgeCollector, Totals, exposition
from bridge.server.session import Link, ResponderFactory
from bridge.server.sessions import SessionTable
from bridge.server.watchdog import LoopWatchdog
from bridge.server.workers import port_offset, worker_of
from bridge.wire.connection import BotConnection
from bridge.wire.protocol import CloseCode, RouteError, parse_control_route, parse_route
from bridge.wire.signing import verify

log = logging.getLogger(__name__)
WEBSOCKETS_LOG = logging.getLogger("bridge.websockets")
WEBSOCKETS_LOG.setLevel(logging.WARNING)  # per-connection chatter; sessions log their own lines


class BridgeServer:
    """Owns the listening socket and the session table; start() then serve_forever or close()."""

    def __init__(self, config: BridgeConfig, make_responders: list[ResponderFactory]) -> None:
        self.config = config
        self.sessions = SessionTable(config, make_responders)
        self.limiter = FailureLimiter(config.handshake_failures, config.handshake_failures_window_s)
        self.totals = Totals()
        self.sessions.on_end.append(self.totals.add_session)
        self.collector = BridgeCollector(self.sessions, self.totals)
        self.watchdog = LoopWatchdog(
            config.watchdog_threshold_s,
            on_lag=self.totals.loop_lag.observe,
            on_block=self._count_block,
        )
        self.draining = False
        self._server: Server | None = None

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        assert self._server is not None, "start() first"
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> Server:
        """Listen; audio frames go uncompressed (deflate costs CPU and saves little on PCM)."""
        c = self.config
        if c.secret is None:
            log.warning(
                "no --secret set: anyone who can reach %s:%s can open sessions",
                c.host,
                c.listen_port,
            )
        if c.lead_ms <= c.prebuffer_ms:
            log.warning(
                "--lead-ms %g leaves no room above --prebuffer-ms %g: after a late frame, a live "
                "stream's frames wait in the bridge until some are shed; keep the lead about "
                "twice the prebuffer",
                c.lead_ms,
                c.prebuffer_ms,
            )
        self._server = await serve(
            self._handle,
            c.host,
            c.listen_port,
            process_request=self._admit,
            compression=None,
            create_connection=BotConnection,
            max_size=c.max_message_bytes,
            ping_interval=c.ping_interval_s,
            ping_timeout=c.ping_timeout_s,
            close_timeout=c.close_timeout_s,
            logger=WEBSOCKETS_LOG,
        )
        self.watchdog.start()
        # What exists by now (modules, config) lives for good: keep it out of every full
        # collection, whose pause would otherwise hold up frames that are due.
        gc.freeze()
        return self._server

    async def drain(self, timeout_s: float) -> None:
        """Refuse new sessions (health says 503), let live ones end for up to timeout_s, close."""
        self.draining = True
        live = len(self.sessions.sessions)
        log.info("draining: %d sessions may finish within %.0f s", live, timeout_s)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while self.sessions.sessions:
                    await asyncio.sleep(0.05)
        await self.close()

    async def close(self) -> None:
        """Stop listening and end every session (their responders finish, recorders flush)."""
        if self._server is not None:
            self._server.close(close_connections=False)
            await self.sessions.close_all("server shutting down", on_purpose=self.draining)
            await self._server.wait_closed()
            await self.watchdog.stop()
            self._server = None
            gc.unfreeze()  # what start() kept out of collections may be garbage by now

    def _count_block(self) -> None:
        self.totals.loop_blocked += 1

    def base_url(self) -> str:
        c = self.config
        if c.public_url:
            return port_offset(c.public_url, c.worker_index) if c.workers > 1 else c.public_url
        return f"ws://{c.host}:{self.port}"

    def banner(self) -> str:
        """The URLs to give a bot, with an example session id."""
        c = self.config
        base, example = self.base_url(), uuid.uuid4().hex[:12]
        while c.workers > 1 and worker_of(example, c.workers) != c.worker_index:
            example = uuid.uuid4().hex[:12]  # an example this worker accepts
        worker = (
            f" (worker {c.worker_index} of {c.workers}: sessions whose crc32(id) % "
            f"{c.workers} is {c.worker_index})"
            if c.workers > 1
            else ""
        )
        return (
            f"speakbridge listening on {base}{worker} (default rate {c.rate} Hz)\n"
            f"  one socket both ways:  streaming.output = streaming.input = "
            f"{base}/bots/{{session_id}}\n"
            f"  split sockets:         streaming.output = {base}/bots/{{session_id}}/output\n"
            f"                         streaming.input  = {base}/bots/{{session_id}}/input\n"
            f"  a bot whose hello names no sample_rate (gen1) is taken at {c.rate} Hz: add "
            f"?rate=16000 to its URLs if it streams 16 kHz; e.g. {base}/bots/{example}?rate=16000"
        )

    def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        """Route, authenticate and admit a request before the upgrade; refusals are logged once."""
        address, now = _peer(connection), time.monotonic()
        path = request.path.split("?")[0]
        try:
            if self.limiter.blocked(address, now):
                self.limiter.refused += 1
                raise RouteError(429, "too many failed handshakes from this address; retry later")
            if path == "/healthz":
                status, text = (503, "draining\n") if self.draining else (200, "ok\n")
                return connection.respond(status, text)
            if path == "/metrics":
                return self._metrics(connection)
            if path == "/sessions":
                return self._listing(connection, request)
            if path.startswith("/control/"):
                session_id, token = parse_control_route(request.path)
                self._check_worker(session_id)
                self._authenticate(token, session_id, "control")
                if session_id not in self.sessions.sessions:
                    raise RouteError(404, f"no session {session_id}")
                return None
            route = parse_route(request.path)
            self._check_worker(route.session_id)
            self._authenticate(route.token, route.session_id, route.path_role)
            if self.draining and route.session_id not in self.sessions.sessions:
                raise RouteError(503, "the server is draining; connect to another one")
            self.sessions.admit(route)
        except RouteError as exc:
            self.totals.refused[exc.status] += 1
            if exc.status != 429:
                self.limiter.record_failure(address, now)
            log.warning(
                "refused %s from %s: %d %s",
                path,  # never the token
                address,
                exc.status,
                exc.detail,
            )
            return connection.respond(exc.status, exc.detail + "\n")
        return None

    def _check_worker(self, session_id: str) -> None:
        """With --workers, a session lives on its own worker: both sockets must come here."""
        c = self.config
        if c.workers > 1 and (owner := worker_of(session_id, c.workers)) != c.worker_index:
            raise RouteError(
                421, f"session {session_id} belongs to worker {owner}, port {c.port + owner}"
            )

    def _authenticate(self, token: str | None, session_id: str, role: str) -> None:
        if self.config.secret is not None:
            secret = self.config.secret.get_secret_value()
            verify(secret, token, session_id, role, time.time())

    def _metrics(self, connection: ServerConnection) -> Response:
        page = exposition(self.collector)
        if page is None:
            return connection.respond(
                501, "metrics need prometheus-client: pip install 'speakbridge[metrics]'\n"
            )
        body, content_type = page
        return Response(200, "OK", Headers([("Content-Type", content_type)]), body)

    def _listing(self, connection: ServerConnection, request: Request) -> Response:
        """GET /sessions: the live sessions as JSON (needs a token for "sessions" with a secret)."""
        self._authenticate(
            parse_qs(urlsplit(request.path).query).get("token", [None])[-1], "sessions", "control"
        )
        now = time.monotonic()
        body = [
            {
                "session": s.id,
                "rate": s.sample_rate,
                "phase": s.phase,
                "bot_id": s.info.bot_id,
                "sockets": len(s.links),
                "speaking": s.playout.speaking,
                "age_s": round(now - s.stats.started, 1),
            }
            for s in self.sessions.sessions.values()
        ]
        headers = Headers([("Content-Type", "application/json")])
        return Response(200, "OK", headers, json.dumps(body).encode() + b"\n")

    async def _handle(self, connection: ServerConnection) -> None:
        target = connection.request.path  # type: ignore[union-attr]
        if target.startswith("/control/"):
            session_id, _ = parse_control_route(target)
            session = self.sessions.sessions.get(session_id)
            if session is None:
                await connection.close(CloseCode.SESSION_ENDED, "the session has ended")
                return
            session_context.set({"session": session_id, "info": session.info})
            await serve_control(connection, session, self.config.media_dir)
            return
        route = parse_route(target)
        bot = cast(BotConnection, connection)  # create_connection=BotConnection
        link = Link(bot, route.path_role)
        context: dict[str, Any] = {"session": route.session_id}
        session_context.set(context)  # tasks the session starts inherit it
        try:
            session = await self.sessions.join(route, link)
            context["info"] = session.info
        except RouteError as exc:  # the session changed between admission and upgrade
            log.warning(
                "refused %s from %s after upgrade: %s",
                route.session_id,
                _peer(connection),
                exc.detail,
            )
            await connection.close(4000 + exc.status, exc.detail)
            return
        try:
            async for message in connection:
                bot.took_message()
                if isinstance(message, str):
                    await session.receive_text(link, message)
                else:
                    await session.receive_audio(link, message)
                    if link.source and bot.audio_sink is None:
                        bot.audio_sink = session.receive_source_audio  # later chunks: inline
        except ConnectionClosed as exc:
            if exc.sent is not None and exc.sent.code == CloseCode.MESSAGE_TOO_BIG:
                log.warning(
                    "session %s: closed the %s socket: a frame exceeded max_message_bytes (%d)",
                    route.session_id,
                    route.path_role,
                    self.config.max_message_bytes,
                )
            else:
                log.info("session %s: %s socket lost (%s)", route.session_id, route.path_role, exc)
        finally:
            session.detach(link)


def _peer(connection: ServerConnection) -> str:
    """The client's IP address (the rate limiter's key)."""
    address = connection.remote_address
    return str(address[0]) if address else "?"
