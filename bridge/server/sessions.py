"""The table of live sessions: admission before the upgrade, creation, joining, ending."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bridge.config import BridgeConfig
from bridge.server.session import Link, ResponderFactory, Session
from bridge.wire.protocol import CloseCode, Route, RouteError


class SessionTable:
    """Sessions by id; refuses what cannot join (with an HTTP status) before the upgrade."""

    def __init__(self, config: BridgeConfig, make_responders: list[ResponderFactory]) -> None:
        self.config = config
        self._make_responders = make_responders
        self.sessions: dict[str, Session] = {}
        self.total = 0
        self._closing: set[asyncio.Task[None]] = set()
        self.on_end: list[Callable[[Session], None]] = []  # called as each session ends

    def admit(self, route: Route) -> None:
        """Raise RouteError if a socket on this route could not join its session."""
        session = self.sessions.get(route.session_id)
        if session is None:
            if len(self.sessions) >= self.config.max_sessions:
                raise RouteError(503, f"the server is full ({self.config.max_sessions} sessions)")
            return
        if route.sample_rate and route.sample_rate != session.sample_rate:
            raise RouteError(
                409,
                f"session {route.session_id} runs at {session.sample_rate} Hz, "
                f"not {route.sample_rate}",
            )
        limit = self.config.max_sockets_per_session
        if route.path_role not in session.links and len(session.links) >= limit:
            raise RouteError(409, f"session {route.session_id} already has {limit} sockets")

    async def join(self, route: Route, link: Link) -> Session:
        """Attach link to its session, creating it; a socket it replaces is closed with 4000."""
        self.admit(route)
        session = self.sessions.get(route.session_id)
        if session is None:
            session = Session(
                route.session_id,
                route.sample_rate or self.config.rate,
                self.config,
                self._make_responders,
                self._forget,
            )
            self.sessions[session.id] = session
            self.total += 1
        replaced = session.attach(link)
        if replaced is not None:  # closed in the background: a half-open socket can take a while
            replaced.connection.audio_sink = None  # its audio no longer skips to the session
            task = asyncio.create_task(
                replaced.connection.close(CloseCode.REPLACED, "replaced by a newer connection")
            )
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        return session

    async def close_all(self, reason: str) -> None:
        """End every session (server shutdown)."""
        await asyncio.gather(
            *(s.end(reason, CloseCode.GOING_AWAY) for s in list(self.sessions.values()))
        )

    def _forget(self, session: Session) -> None:
        if self.sessions.get(session.id) is session:
            del self.sessions[session.id]
        for callback in self.on_end:
            callback(session)
