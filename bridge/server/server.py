"""The WebSocket server: routes each request to its session before the upgrade, pumps frames."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
import logging
import time
import uuid
from collections.abc import Awaitable
from typing import Any, cast
from urllib.parse import urlsplit

from pydantic import SecretStr
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from bridge.config import BridgeConfig
from bridge.logs import clip, counted, session_context
from bridge.meetingbaas.lifecycle import (
    WEBHOOK_PATH,
    AfterSession,
    BotSessions,
    WebhookReceiver,
)
from bridge.meetingbaas.webhooks import Verifier
from bridge.server.clients import (
    FORWARDED_FOR,
    ConnectionGate,
    GatedConnection,
    client_address,
    is_trusted,
)
from bridge.server.control import serve_control
from bridge.server.coreload import SAMPLE_EVERY_S, CoreLoad
from bridge.server.heap import SessionHeap
from bridge.server.ingress import Ingress, PostLimits, PostRequest, PostResponse
from bridge.server.limits import AUTH_FAILURES, FailureLimiter, parse_networks
from bridge.server.metrics import BridgeCollector, Totals
from bridge.server.refusals import RefusalLog
from bridge.server.session import Link, ResponderFactory, Session
from bridge.server.sessions import SessionTable
from bridge.server.watchdog import LoopWatchdog
from bridge.wire.connection import BotConnection
from bridge.wire.protocol import (
    CloseCode,
    RouteError,
    parse_control_route,
    parse_query,
    parse_route,
)
from bridge.wire.signing import LISTING_ROLE, verify

log = logging.getLogger(__name__)
WEBSOCKETS_LOG = logging.getLogger("bridge.websockets")
WEBSOCKETS_LOG.setLevel(logging.WARNING)  # per-connection chatter; sessions log their own lines
LOGGED_PATH_CHARS = 120  # of a refused request's path, in its log line
OUT_OF_FDS = "socket.accept() out of system resource"  # asyncio's message when accept fails
OUT_OF_FDS_WARN_EVERY_S = 60.0
BUSY_WARN_EVERY_S = 60.0  # a loop near its limit may cross it every second: one line a minute
WILDCARD_HOSTS = ("0.0.0.0", "::", "")  # bound to every address: no URL a bot could use


class BridgeServer:
    """Owns the listening socket and the session table; start() then serve_forever or close()."""

    def __init__(self, config: BridgeConfig, make_responders: list[ResponderFactory]) -> None:
        self.config = config
        self.sessions = SessionTable(config, make_responders)
        self.limiter = FailureLimiter(config.handshake_failures, config.handshake_failures_window_s)
        self.refusals = RefusalLog(config.refusal_log_window_s)
        self.trusted = parse_networks(config.trusted_proxies)
        self.gate = ConnectionGate(
            config.max_pending_handshakes, config.max_connections_per_address
        )
        self.gate.on_refused = self._gate_refused
        self.totals = Totals()
        self.sessions.on_end.append(self.totals.add_session)
        self.heap = SessionHeap(config.gc_reclaim_sessions)
        self.sessions.on_started.append(self.heap.started)
        self.sessions.on_end.append(self._watch_ended)
        self.collector = BridgeCollector(self.sessions, self.totals, self.gate)
        self.watchdog = LoopWatchdog(
            config.watchdog_threshold_s,
            on_lag=self.totals.loop_lag.observe,
            on_block=self._count_block,
        )
        self.draining = False
        self._server: Server | None = None
        self.bots = BotSessions(self.sessions, config)
        self.webhooks = WebhookReceiver(_verifier(config), self.bots, config)
        self.collector.more.append(self.webhooks.metric_families)
        self.collector.more.append(self.heap.metric_families)
        self.core_load = CoreLoad(config.admit_max_core_share, config.admit_window_s)
        self.collector.more.append(self.core_load.metric_families)
        self._busy_warned = -BUSY_WARN_EVERY_S
        self._busy_said = False  # this busy stretch's start was logged
        self.ingress = Ingress(
            self._post,
            PostLimits(
                config.webhook_max_header_bytes,
                config.webhook_max_body_bytes,
                config.webhook_timeout_s,
                config.webhook_max_connections,
            ),
        )
        self._summaries: asyncio.Task[None] | None = None
        self._load_watch: asyncio.Task[None] | None = None
        self._out_of_fds = 0  # failed accepts since the last warning
        self._out_of_fds_warned = -OUT_OF_FDS_WARN_EVERY_S
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
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self._loop_exception)
        self._server = await serve(
            self._handle,
            c.host,
            c.listen_port,
            process_request=self._admit,
            compression=None,
            create_connection=self.ingress.sniffing(  # type: ignore[arg-type]
                functools.partial(GatedConnection, gate=self.gate, trusted=self.trusted),
                self._sniffer_gate,
            ),
            max_size=c.max_message_bytes,
            ping_interval=c.ping_interval_s,
            ping_timeout=c.ping_timeout_s,
            close_timeout=c.close_timeout_s,
            logger=WEBSOCKETS_LOG,
        )
        self.watchdog.start()
        self._summaries = asyncio.create_task(self._summarize_refusals(), name="refusal-log")
        self._load_watch = asyncio.create_task(self._watch_core_load(), name="core-load")
        # What exists by now (modules, config) lives for good: keep it out of every full
        # collection, whose pause would otherwise hold up frames that are due.
        self.heap.freeze()
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
            self.ingress.close()
            await self.sessions.close_all("server shutting down", on_purpose=self.draining)
            await asyncio.gather(  # control clients would hold wait_closed() for ever
                *(c.close(CloseCode.GOING_AWAY, "server shutting down") for c in self._controls)
            )
            await self._server.wait_closed()
            await self.watchdog.stop()
            for task in (self._summaries, self._load_watch):
                if task is not None:
                    task.cancel()
            self._log_summaries(float("inf"))  # what the last windows counted is not lost
            self._server = None
            self.heap.close()  # what was kept out of collections may be garbage by now

    def _watch_ended(self, session: Session) -> None:
        """The heap watches an ended session and its responders, but those kept on purpose
        for the bot's final webhook (AfterSession: at most webhook_pending_bots)."""
        responders = [r.responder for r in session.runners]
        self.heap.ended(session, [r for r in responders if not isinstance(r, AfterSession)])

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

    def _admit(
        self, connection: ServerConnection, request: Request
    ) -> Response | Awaitable[Response] | None:
        """Route, authenticate and admit a request before the upgrade; refusals are logged
        once per address and window (docs/security.md has every status)."""
        address, now = self._client(connection, request), time.monotonic()
        path = request.path.split("?")[0]
        try:
            if path == "/healthz":  # never limited: a load balancer must always get an answer
                return connection.respond(*self._health())
            if path == "/metrics":  # never limited, never counted: it has its own token
                return self._metrics(connection, request)  # awaited: it reads in slices
            self._check_origin(request)
            if self.limiter.blocked(address, now):
                self.limiter.refused += 1
                raise RouteError(429, "too many failed authentications from this address")
            if path == "/sessions":
                return self._listing(connection, request)
            if path.startswith("/control/"):
                self._admit_control(request)
                return None
            route = parse_route(request.path)
            self._authenticate(route.token, route.session_id, route.path_role)
            self.sessions.admit(route)  # first: an ended session's 410 must not become a 503
            if route.session_id not in self.sessions.sessions:
                self._admit_new_session()
        except RouteError as exc:
            self.totals.refused[exc.status] += 1
            if exc.status in AUTH_FAILURES:  # not 503 or 409: a bot retrying a full server
                self.limiter.record_failure(address, now)
            what = f"{clip(path, LOGGED_PATH_CHARS)!r}"
            self._log_refusal(address, now, what, f"{exc.status} {exc.detail}")
            return connection.respond(exc.status, exc.detail + "\n")
        return None

    def _admit_new_session(self) -> None:
        """A new session (not a socket of a held one) is refused while draining or busy."""
        if self.draining:
            raise RouteError(503, "the server is draining; connect to another one")
        if self.core_load.busy:
            share = f"{self.core_load.share:.0%}"
            raise RouteError(
                503, f"the server is busy ({share} of its core); connect to another one"
            )

    async def _watch_core_load(self) -> None:
        """Sample the loop's core share every second; say when new sessions start or stop
        being refused for it (the start at most once a minute)."""
        while True:
            await asyncio.sleep(SAMPLE_EVERY_S)
            if self.core_load.sample():
                self._log_busy(time.monotonic())

    def _log_busy(self, now: float) -> None:
        load, limit = self.core_load, self.config.admit_max_core_share
        if load.busy and now - self._busy_warned >= BUSY_WARN_EVERY_S:
            self._busy_warned, self._busy_said = now, True
            log.warning(
                "busy: the event loop used %.0f%% of its core over the last %.0f s (limit "
                "%.0f%%): new sessions get 503 until it drops; live ones go on",
                100 * load.share,
                self.config.admit_window_s,
                100 * limit,
            )
        elif not load.busy and self._busy_said:
            self._busy_said = False
            log.info(
                "no longer busy (%.0f%% of its core): new sessions are admitted", 100 * load.share
            )

    def _admit_control(self, request: Request) -> None:
        session_id, token = parse_control_route(request.path)
        self._authenticate(token, session_id, "control")
        session = self.sessions.sessions.get(session_id)
        if session is None:
            raise RouteError(404, f"no session {session_id}")
        if session.events.subscribers >= self.config.max_control_clients:
            raise RouteError(
                429, f"session {session_id} has {self.config.max_control_clients} control clients"
            )

    def _client(self, connection: ServerConnection, request: Request) -> str:
        """The client's address (the limiter's key); a trusted proxy's connection is
        counted against the client it names (429 when that client has too many)."""
        peer = _peer(connection)
        if not is_trusted(peer, self.trusted):
            return peer
        address = client_address(peer, request.headers.get(FORWARDED_FOR), self.trusted)
        if not self.gate.assign(connection, address):
            raise RouteError(429, "too many connections from this address")
        return address

    def _check_origin(self, request: Request) -> None:
        """A browser page's request names its Origin: refused unless --allowed-origin lists
        it (bots send none). Stops any web page from reaching a bridge on localhost."""
        origin = request.headers.get("Origin")
        if origin is not None and origin not in self.config.allowed_origins:
            raise RouteError(403, f"origin {clip(origin, 80)!r} is not allowed (--allowed-origin)")

    def _log_refusal(self, address: str, now: float, what: str, outcome: str) -> None:
        if self.refusals.refused(address, now):
            log.warning(
                "refused %s from %s: %s (more from it within %.0f s are counted, then summed)",
                what,  # never the token
                address,
                clip(outcome, LOGGED_PATH_CHARS),
                self.refusals.window_s,
            )

    def _gate_refused(self, address: str, reason: str) -> None:
        """A connection the gate dropped before its request (a cap was reached)."""
        limit = {
            "pending_handshakes": f"max_pending_handshakes ({self.config.max_pending_handshakes})",
            "connections_per_address": "max_connections_per_address "
            f"({self.config.max_connections_per_address})",
        }[reason]
        self._log_refusal(address, time.monotonic(), "a connection", f"dropped, {limit} reached")

    async def _summarize_refusals(self) -> None:
        """Every window, one line per address whose further refusals were only counted."""
        while True:
            await asyncio.sleep(self.refusals.window_s)
            self._log_summaries(time.monotonic())

    def _log_summaries(self, now: float) -> None:
        window = self.refusals.window_s
        for address, count in self.refusals.summaries(now):
            log.warning(
                "refused %d more from %s within %.0f s of the first", count, address, window
            )

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Out of file descriptors, asyncio retries accepting every second and logs each
        failure with a traceback: here one warning a minute says it, with the count."""
        if context.get("message") != OUT_OF_FDS:
            if self.totals.accept_failures and "_start_serving" in repr(context.get("handle")):
                return  # one of those retries, run after the socket closed: nothing to say
            loop.default_exception_handler(context)
            return
        self._out_of_fds += 1
        self.totals.accept_failures += 1
        now = time.monotonic()
        if now - self._out_of_fds_warned >= OUT_OF_FDS_WARN_EVERY_S:
            log.warning(
                "cannot accept connections: %s (%d failed accepts); new connections wait, "
                "retried every second: raise the open-files limit (ulimit -n) or lower "
                "--max-sessions",
                context.get("exception"),
                self._out_of_fds,
            )
            self._out_of_fds_warned, self._out_of_fds = now, 0

    def _health(self) -> tuple[int, str]:
        """503 while draining, busy or full: a balancer's health check sends new sessions on."""
        if self.draining:
            return 503, "draining\n"
        if self.core_load.busy:
            return 503, f"busy ({self.core_load.share:.0%} of its core)\n"
        if len(self.sessions.sessions) >= self.config.max_sessions:
            return 503, f"full ({self.config.max_sessions} sessions)\n"
        return 200, "ok\n"

    def _sniffer_gate(self, socket: object, peer: str | None) -> str | None:
        """The connection gate for a socket not yet told apart (POST or WebSocket): peer
        admits it (returns why not), None frees its slot."""
        if peer is None:
            self.gate.closed(socket)
            return None
        return self.gate.opened(socket, peer, not is_trusted(peer, self.trusted))

    def _post(self, request: PostRequest, peer: str) -> PostResponse:
        """A POST on this port (websockets takes only GETs): the webhook receiver's."""
        if request.path == WEBHOOK_PATH:
            return self.webhooks.receive(request, peer)
        return PostResponse(404, f"no POST route {request.path}")

    def _authenticate(self, token: str | None, session_id: str, role: str) -> None:
        if self.config.secret is not None:
            secret = self.config.secret.get_secret_value()
            verify(secret, token, session_id, role, time.time())

    async def _metrics(self, connection: ServerConnection, request: Request) -> Response:
        token = self.config.metrics_token
        if token is not None:
            given = request.headers.get("Authorization", "").removeprefix("Bearer ")
            if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
                return connection.respond(401, "metrics need 'Authorization: Bearer <token>'\n")
        body, content_type = await self.collector.page()
        return Response(200, "OK", Headers([("Content-Type", content_type)]), body)

    def _listing(self, connection: ServerConnection, request: Request) -> Response:
        """GET /sessions: the live sessions as JSON (with a secret, a token for the listing
        role: signing.listing_url)."""
        token = parse_query(urlsplit(request.path).query).get("token")
        self._authenticate(token, "", LISTING_ROLE)
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
                "bot_status": self.bots.status_of(s.id),
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
            if session.events.subscribers >= self.config.max_control_clients:  # admitted at once
                await connection.close(CloseCode.TRY_AGAIN_LATER, "too many control clients")
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
                    if link.source and bot.audio_sink is None and link in session.links.values():
                        bot.audio_sink = session.audio_sink  # later chunks: inline
                        bot.coalesce_reads = True  # the pipeline frames chunks of any size
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


def _verifier(config: BridgeConfig) -> Verifier:
    def text(secret: SecretStr | None) -> str | None:
        return secret.get_secret_value() if secret is not None else None

    return Verifier.from_settings(
        text(config.webhook_svix_secret),
        text(config.webhook_callback_secret),
        text(config.webhook_api_key),
    )


def _peer(connection: ServerConnection) -> str:
    """The client's IP address (the rate limiter's key)."""
    address = connection.remote_address
    return str(address[0]) if address else "?"
