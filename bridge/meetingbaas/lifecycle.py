"""The meeting's lifecycle from Meeting BaaS webhooks, applied to the bridge's sessions.

`WebhookReceiver.receive` is the handler of `POST /webhooks/meetingbaas`: it verifies the
delivery, drops one seen before, answers at once and processes after (call_soon). A
bot's events reach its session through `BotSessions`: the bot id is bound to a session by
the launcher (the id the API returned), by the hello's `bot_id`, or by the session id that
launch put in the bot's `extra` (echoed in every webhook). Statuses for a bot whose session
is not live yet wait (bounded) until it connects.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from bridge.meetingbaas.webhooks import (
    BadDelivery,
    BotFinal,
    BotStatus,
    CalendarNotice,
    Notice,
    RecentKeys,
    Unauthorized,
    Verifier,
    content_key,
    delivery_key,
    parse_notice,
)
from bridge.responder import Event
from bridge.server.ingress import PostRequest, PostResponse, QuietLog

if TYPE_CHECKING:
    from bridge.config import BridgeConfig
    from bridge.server.session import Session
    from bridge.server.sessions import SessionTable

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/meetingbaas"
SESSION_KEY = "speakbridge_session"  # in the bot's `extra`: the session it streams to
IN_CALL = "in_call_recording"
ENDS_SESSION = frozenset({"call_ended"})
REASON_PREFIX = "Meeting BaaS: "  # of the end reason of a session its bot's webhook ended


@runtime_checkable
class AfterSession(Protocol):
    """A responder that takes events after its session ended (the recorder's timeline)."""

    def after_session(self, event: Event) -> None: ...


CalendarHandler = Callable[[CalendarNotice], None]
FinalHandler = Callable[[BotFinal, str], None]  # (final event, session id or bot id)


class BotSessions:
    """Which session each bot streams to, and what a bot was told before it connected."""

    def __init__(self, table: SessionTable, config: BridgeConfig) -> None:
        self.table = table
        self.config = config
        self.bound: OrderedDict[str, str] = OrderedDict()  # bot id -> session id
        self.expected: OrderedDict[str, str] = OrderedDict()  # session id -> bot id
        self.pending: OrderedDict[str, list[Notice]] = OrderedDict()  # by bot id
        self.pending_dropped = 0
        self.last_status: dict[str, dict[str, Any]] = {}  # live session id -> its last status
        self.ended: OrderedDict[str, list[AfterSession]] = OrderedDict()
        table.on_start.append(self._started)
        table.on_end.append(self._ended)

    def expect(self, bot_id: str, session_id: str) -> None:
        """The launcher created bot_id to stream to session_id."""
        self._remember(self.bound, bot_id, session_id)
        self._remember(self.expected, session_id, bot_id)

    def session_of(self, bot_id: str, extra: dict[str, Any] | None) -> str | None:
        """The session bot_id streams to, if known (from a launch, a hello or extra)."""
        if (session_id := self.bound.get(bot_id)) is not None:
            return session_id
        named = (extra or {}).get(SESSION_KEY)
        if isinstance(named, str) and named:
            self.expect(bot_id, named)
            return named
        return None

    def apply(self, notice: BotStatus | BotFinal) -> None:
        """Tell the bot's session, or keep the notice until the session is live."""
        session_id = self.session_of(notice.bot_id, notice.extra)
        session = self.table.sessions.get(session_id) if session_id else None
        if session is not None and not session.ended:
            self._release(notice.bot_id, session)  # what it was told before, first
            self._tell(session, notice)
            return
        if session_id is not None and _ends(notice):  # a reconnect is refused from now on
            self.table.finish(session_id, _reason(notice))
            self._after(session_id, notice)
            return
        if session_id is not None and session_id in self.ended:
            self._after(session_id, notice)
            return
        self._keep(notice)

    def status_of(self, session_id: str) -> dict[str, Any] | None:
        """The session's last bot status (for /sessions)."""
        return self.last_status.get(session_id)

    def _tell(self, session: Session, notice: BotStatus | BotFinal) -> None:
        if isinstance(notice, BotStatus):
            status = {"bot_id": notice.bot_id, "code": notice.code, "at": notice.created_at}
            status |= notice.fields
            self.last_status[session.id] = status
            session.events.publish("bot_status", **status)
            if notice.code == IN_CALL:
                session.enter_call("webhook")
        else:
            session.events.publish(_event_type(notice), **_final_fields(notice))
        if _ends(notice):
            log.info("session %s: %s; ending it now", session.id, _reason(notice))
            self.table.finish(session.id, _reason(notice))

    def _after(self, session_id: str, notice: BotStatus | BotFinal) -> None:
        """An ended session's bot reported more: its after-session responders hear it."""
        if not isinstance(notice, BotFinal):
            return
        event = {"type": _event_type(notice), "session": session_id, "time": time.time()}
        event |= _final_fields(notice)
        for responder in self.ended.get(session_id, []):
            try:
                responder.after_session(event)
            except Exception:  # a responder's bug must not stop the others
                log.exception("session %s: after_session failed", session_id)

    def _keep(self, notice: BotStatus | BotFinal) -> None:
        queue = self.pending.setdefault(notice.bot_id, [])
        self.pending.move_to_end(notice.bot_id)
        if len(queue) >= self.config.webhook_pending_per_bot:
            self.pending_dropped += 1
            log.warning("bot %s: too many statuses before its session; dropping", notice.bot_id)
            return
        queue.append(notice)
        while len(self.pending) > self.config.webhook_pending_bots:
            _, dropped = self.pending.popitem(last=False)
            self.pending_dropped += len(dropped)

    def _started(self, session: Session) -> None:
        session.events.listen(lambda event, _: self._heard(session, event))

    def _heard(self, session: Session, event: Event) -> None:
        """At the hello (its responders run from then on), apply what the bot was told."""
        if event["type"] != "hello":
            return
        loop = asyncio.get_running_loop()
        if event.get("bot_id"):
            bot_id = str(event["bot_id"])
            self._remember(self.bound, bot_id, session.id)
            loop.call_soon(self._release, bot_id, session)
        if (launched := self.expected.get(session.id)) is not None:
            loop.call_soon(self._release, launched, session)

    def _release(self, bot_id: str, session: Session) -> None:
        """Apply what bot_id was told before its session was live."""
        for notice in self.pending.pop(bot_id, []):
            if session.ended:
                return
            self._tell(session, notice)

    def _ended(self, session: Session) -> None:
        self.last_status.pop(session.id, None)
        later = [r.responder for r in session.runners if isinstance(r.responder, AfterSession)]
        self._remember(self.ended, session.id, later)

    def _remember(self, table: OrderedDict[str, Any], key: str, value: Any) -> None:
        table[key] = value
        table.move_to_end(key)
        while len(table) > self.config.webhook_pending_bots:
            table.popitem(last=False)


def _ends(notice: BotStatus | BotFinal) -> bool:
    return isinstance(notice, BotFinal) or notice.code in ENDS_SESSION


def _reason(notice: BotStatus | BotFinal) -> str:
    if isinstance(notice, BotStatus):
        return f"{REASON_PREFIX}{notice.code}"
    if notice.kind == "bot.failed":
        return f"{REASON_PREFIX}bot.failed {notice.error_code or '?'}: {notice.error_message or ''}"
    return f"{REASON_PREFIX}bot.completed"


def _event_type(notice: BotFinal) -> str:
    return "bot_completed" if notice.kind == "bot.completed" else "bot_failed"


def _final_fields(notice: BotFinal) -> dict[str, Any]:
    fields: dict[str, Any] = {"bot_id": notice.bot_id, **notice.data}
    fields.pop("event", None)  # v1 repeats it inside data
    if notice.kind == "bot.failed":
        fields["error_code"] = notice.error_code
        fields["error_message"] = notice.error_message
    else:
        fields["artifacts"] = notice.artifacts()
    return fields


class WebhookReceiver:
    """Verifies, dedupes and dispatches Meeting BaaS deliveries (POST /webhooks/meetingbaas)."""

    def __init__(
        self,
        verifier: Verifier,
        bots: BotSessions,
        config: BridgeConfig,
        on_final: FinalHandler | None = None,
        on_calendar: CalendarHandler | None = None,
    ) -> None:
        self.verifier = verifier
        self.bots = bots
        self.on_final = on_final
        self.on_calendar = on_calendar
        self._recent = RecentKeys(config.webhook_dedupe_keys, config.webhook_dedupe_window_s)
        self._quiet = QuietLog(log, config.webhook_log_window_s)
        self.deliveries: Counter[str] = Counter()  # by outcome
        self.events: Counter[str] = Counter()  # accepted, by event type
        self.statuses: Counter[str] = Counter()  # accepted bot statuses, by code

    def receive(self, request: PostRequest, peer: str) -> PostResponse:
        """Answer a delivery at once (401 unverified, 400 not an event, 200 otherwise);
        a new one is processed right after."""
        try:
            scheme = self.verifier.verify(request.headers, request.body, time.time())
        except Unauthorized as exc:
            self.deliveries["unauthorized"] += 1
            self._quiet.warning("401", "webhook from %s refused: 401 %s", peer, exc)
            return PostResponse(401, "unauthorized")
        try:
            notice = parse_notice(request.body)
        except BadDelivery as exc:
            self.deliveries["bad"] += 1
            self._quiet.warning("400", "webhook from %s refused: 400 %s", peer, exc)
            return PostResponse(400, str(exc))
        keys = {delivery_key(scheme, request.headers, notice), content_key(notice)} - {None}
        # every key is remembered, and any one seen before makes it a duplicate
        repeats = [self._recent.seen(key) for key in sorted(keys)]  # type: ignore[type-var]
        if any(repeats):
            self.deliveries["duplicate"] += 1
            return PostResponse(200, "duplicate")
        self.deliveries["accepted"] += 1
        self.events[notice.kind] += 1
        asyncio.get_running_loop().call_soon(self._process, notice)
        return PostResponse(200, "ok")

    def _process(self, notice: Notice) -> None:
        if isinstance(notice, BotStatus):
            self.statuses[notice.code] += 1
            log.info("bot %s: status %s", notice.bot_id, notice.code)
            self.bots.apply(notice)
        elif isinstance(notice, BotFinal):
            log.info("bot %s: %s %s", notice.bot_id, notice.kind, notice.error_code or "")
            self.bots.apply(notice)
            if self.on_final is not None:
                where = self.bots.session_of(notice.bot_id, notice.extra) or notice.bot_id
                self.on_final(notice, where)
        elif isinstance(notice, CalendarNotice):
            if self.on_calendar is not None:
                self.on_calendar(notice)
        else:
            log.debug("webhook %s: counted, not used", notice.kind)

    def metric_families(self) -> Iterator[Any]:
        """Prometheus families: deliveries by outcome, events by type, bot statuses by code."""
        from prometheus_client.core import CounterMetricFamily

        for name, doc, label, counts in (
            ("speakbridge_webhooks", "Webhook deliveries by outcome", "outcome", self.deliveries),
            ("speakbridge_webhook_events", "Accepted webhook events by type", "event", self.events),
            ("speakbridge_bot_statuses", "Bot status changes by code", "code", self.statuses),
        ):
            family = CounterMetricFamily(name, doc, labels=[label])
            for key, n in counts.items():
                family.add_metric([key], n)
            yield family
