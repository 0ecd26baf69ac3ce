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
from bridge.logs import counted, session_context
from bridge.server.control import serve_control
from bridge.server.limits import FailureLimiter, client_address, parse_networks
from bridge.server.metrics import BridgeCollector, Totals, exposition
from bridge.server.session import Link, ResponderFactory
from bridge.server.sessions import SessionTable
from bridge.server.watchdog import LoopWatchdog
from bridge.wire.connection import BotConnection
from bridge.wire.protocol import CloseCode, RouteError, parse_control_route, parse_route
from bridge.wire.signing import verify

log = logging.getLogger(__name__)
WEBSOCKETS_LOG = logging.getLogger("bridge.websockets")
WEBSOCKETS_LOG.setLevel(logging.WARNING)  # per-connection chatter; sessions log their own lines
WILDCARD_HOSTS = ("0.0.0.0", "::", "")  # bound to every address: no URL a bot could use


class BridgeServer:
    """Owns the listening socket and the session table; start() then serve_forever or close()."""

    def __init__(self, config: BridgeConfig, make_responders: list[ResponderFactory]) -> None:
        self.config = config
        self.sessions = SessionTable(config, make_responders)
        self.limiter = FailureLimiter(config.handshake_failures, config.handshake_failures_window_s)
        self.proxies = parse_networks(config.trusted_proxies)
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
        self._controls: set[ServerConnection] = set()  # open control-channel connections

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
        live = counted(len(self.sessions.sessions), "session")
        log.info("draining: %s may finish within %.0f s", live, timeout_s)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while self.sessions.sessions:
                    self._end_idle_sessions()
                    await asyncio.sleep(0.05)
        await self.close()

    def _end_idle_sessions(self) -> None:
        """While draining, a session with no socket open ends now, on purpose: no bot is left
        to serve, and its grace period would only hold up the exit."""
        for session in list(self.sessions.sessions.values()):
            if not session.links:
                self.sessions.finish(session.id, "server draining")

    async def close(self) -> None:
        """Stop listening and end every session (their responders finish, recorders flush)."""
        if self._server is not None:
            self._server.close(close_connections=False)
            await self.sessions.close_all("server shutting down", on_purpose=self.draining)
            await asyncio.gather(  # control clients would hold wait_closed() for ever
                *(c.close(CloseCode.GOING_AWAY, "server shutting down") for c in self._controls)
            )
            await self._server.wait_closed()
            await self.watchdog.stop()
            self._server = None
            gc.unfreeze()  # what start() kept out of collections may be garbage by now

    def _count_block(self) -> None:
        self.totals.loop_blocked += 1

    def base_url(self) -> str:
        """What bots are given: the public URL (a load balancer's with --workers), else ours."""
        c = self.config
        return c.public_url or f"ws://{c.host}:{self.port}"

    def banner(self) -> str:
        """The URLs to give a bot, with an example session id; bound to every address with no
        --public-url, it asks for one instead (ws://0.0.0.0 reaches no bot)."""
        c = self.config
        base, example = self.base_url(), uuid.uuid4().hex[:12]
        worker = (
            f" (worker {c.worker_index} of {c.workers}, on port {self.port} behind it)"
            if c.workers > 1
            else ""
        )
        heading = f"speakbridge listening on {base}{worker} (default rate {c.rate} Hz)\n"
        if not c.public_url and c.host in WILDCARD_HOSTS:
            heading = (
                f"speakbridge listening on every address, port {self.port}{worker} "
                f"(default rate {c.rate} Hz)\n"
                "  bots need the URL they can reach: start with --public-url wss://HOST[:PORT] "
                "(TLS through a reverse proxy: docs/deployment.md)\n"
            )
            base = "wss://HOST"
        return heading + (
            f"  one socket both ways:  streaming.output = streaming.input = "
            f"{base}/bots/{{session_id}}\n"
            f"  split sockets:         streaming.output = {base}/bots/{{session_id}}/output\n"
            f"                         streaming.input  = {base}/bots/{{session_id}}/input\n"
            f"  a bot whose hello names no sample_rate (gen1) is taken at {c.rate} Hz: add "
            f"?rate=16000 to its URLs if it streams 16 kHz; e.g. {base}/bots/{example}?rate=16000"
        )

    def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        """Route, authenticate and admit a request before the upgrade; refusals are logged once."""
        address, now = self._client(connection, request), time.monotonic()
        path = request.path.split("?")[0]
        try:
            if self.limiter.blocked(address, now):
                self.limiter.refused += 1
                raise RouteError(429, "too many failed handshakes from this address; retry later")
            if path == "/healthz":
                return connection.respond(*self._health())
            if path == "/metrics":
                return self._metrics(connection)
            if path == "/sessions":
                return self._listing(connection, request)
            if path.startswith("/control/"):
                session_id, token = parse_control_route(request.path)
                self._authenticate(token, session_id, "control")
                if session_id not in self.sessions.sessions:
                    raise RouteError(404, f"no session {session_id}")
                return None
            route = parse_route(request.path)
            self._authenticate(route.token, route.session_id, route.path_role)
            self.sessions.admit(route)  # first: an ended session's 410 must not become a 503
            if self.draining and route.session_id not in self.sessions.sessions:
                raise RouteError(503, "the server is draining; connect to another one")
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

    def _client(self, connection: ServerConnection, request: Request) -> str:
        """The rate limiter's key: the peer, or the client a trusted load balancer names."""
        forwarded = request.headers.get("X-Forwarded-For")
        return client_address(_peer(connection), forwarded, self.proxies)

    def _health(self) -> tuple[int, str]:
        """503 while draining or full: a load balancer's health check sends new sessions on."""
        if self.draining:
            return 503, "draining\n"
        if len(self.sessions.sessions) >= self.config.max_sessions:
            return 503, f"full ({self.config.max_sessions} sessions)\n"
        return 200, "ok\n"

    def _authenticate(self, token: str | None, session_id: str, role: str) -> None:
        if self.config.secret is not None:
            secret = self.config.secret.get_secret_value()
            verify(secret, token, session_id, role, time.time())

    def _metrics(self, connection: ServerConnection) -> Response:
        body, content_type = exposition(self.collector)
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
            self._controls.add(connection)
            try:
                await serve_control(connection, session, self.config.media_dir)
            finally:
                self._controls.discard(connection)
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
