"""The table of live sessions: admission before the upgrade, creation, joining, ending.

It also remembers, for `ended_ttl_s`, the sessions the bridge ended on purpose (a leave, a
drain, the call's end): gen3 bots reconnect to the same URL after any close, and a refusal
before the upgrade (410) is what makes them back off instead of re-creating the session.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from bridge.config import BridgeConfig
from bridge.logs import counted
from bridge.server.session import Link, ResponderFactory, Session
from bridge.wire.protocol import CloseCode, Route, RouteError

log = logging.getLogger(__name__)


class EndedSessions:
    """Ids of sessions ended on purpose, each with its reason, for ttl_s; at most `limit`
    (the oldest are forgotten first)."""

    def __init__(
        self, ttl_s: float, limit: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl_s = ttl_s
        self._limit = limit
        self._clock = clock
        self._ended: OrderedDict[str, tuple[float, str]] = OrderedDict()

    def add(self, session_id: str, reason: str) -> None:
        """Remember that session_id was ended on purpose, from now for ttl_s."""
        self._ended.pop(session_id, None)
        self._ended[session_id] = (self._clock() + self._ttl_s, reason)
        while len(self._ended) > self._limit:
            self._ended.popitem(last=False)

    def reason(self, session_id: str) -> str | None:
        """Why session_id was ended, while it is remembered; else None."""
        now = self._clock()
        while self._ended and next(iter(self._ended.values()))[0] <= now:
            self._ended.popitem(last=False)
        entry = self._ended.get(session_id)
        return None if entry is None else entry[1]

    def __len__(self) -> int:
        return len(self._ended)


class SessionTable:
    """Sessions by id; refuses what cannot join (with an HTTP status) before the upgrade."""

    def __init__(self, config: BridgeConfig, make_responders: list[ResponderFactory]) -> None:
        self.config = config
        self._make_responders = make_responders
        self.sessions: dict[str, Session] = {}
        self.total = 0
        self._closing: set[asyncio.Task[None]] = set()
        self.on_end: list[Callable[[Session], None]] = []  # called as each session ends
        self.on_start: list[Callable[[Session], None]] = []  # called as each session is made
        self.on_started: list[Callable[[Session], None]] = []  # as its responders start
        self.ended = EndedSessions(config.ended_ttl_s, config.max_ended_sessions)
        self.refused_ended = 0  # reconnects refused with 410

    def admit(self, route: Route) -> None:
        """Raise RouteError if a socket on this route could not join its session."""
        session = self.sessions.get(route.session_id)
        if session is None:
            if (reason := self.ended.reason(route.session_id)) is not None:
                self.refused_ended += 1
                raise RouteError(410, f"session {route.session_id} has ended ({reason})")
            if len(self.sessions) >= self.config.max_sessions:
                full = counted(self.config.max_sessions, "session")
                raise RouteError(503, f"the server is full ({full})")
            return
        limit = self.config.max_sockets_per_session
        if route.path_role not in session.links and len(session.links) >= limit:
            sockets = counted(limit, "socket")
            raise RouteError(409, f"session {route.session_id} already has {sockets}")

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
                self._started,
            )
            self.sessions[session.id] = session
            self.total += 1
            for callback in self.on_start:
                callback(session)
        replaced = session.attach(link)
        if replaced is not None:  # closed in the background: a half-open socket can take a while
            replaced.connection.audio_sink = None  # its audio no longer skips to the session
            task = asyncio.create_task(
                replaced.connection.close(CloseCode.REPLACED, "replaced by a newer connection")
            )
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        return session

    def finish(self, session_id: str, reason: str) -> bool:
        """End a session on purpose, now: its id is refused (410) for ended_ttl_s, even if
        no session of that id is live. Returns whether a live session was ended."""
        self.ended.add(session_id, reason)
        session = self.sessions.get(session_id)
        if session is None:
            return False
        session.leave(reason)
        return True

    async def close_all(self, reason: str, on_purpose: bool = False) -> None:
        """End every session (server shutdown; a drain's end ends them on purpose)."""
        sessions = list(self.sessions.values())
        for session in sessions:
            session.left = session.left or on_purpose
        await asyncio.gather(*(s.end(reason, CloseCode.GOING_AWAY) for s in sessions))

    def _started(self, session: Session) -> None:
        for callback in self.on_started:
            callback(session)

    def _forget(self, session: Session) -> None:
        if session.left:
            self.ended.add(session.id, session.end_reason or "ended")
        if self.sessions.get(session.id) is session:
            del self.sessions[session.id]
        for callback in self.on_end:
            callback(session)
