"""Prometheus metrics, read from the sessions at scrape time: nothing on the audio path.

Counters of ended sessions are folded into server totals when each session ends; a scrape
adds the live sessions' current counts, in prometheus-client's text format. It reads them
SCRAPE_SLICE sessions at a time, the loop turning between slices: read at once, a
thousand sessions held every session's audio for tens of milliseconds, every scrape.
"""

from __future__ import annotations

import asyncio
import copy
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import prometheus_client
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from bridge.server.histogram import LATENCY_BUCKETS_S, LOOP_LAG_BUCKETS_S, Histogram

if TYPE_CHECKING:
    from bridge.server.clients import ConnectionGate
    from bridge.server.session import Session
    from bridge.server.sessions import SessionTable

SCRAPE_SLICE = 50  # live sessions a scrape reads between two turns of the event loop


@dataclass
class Totals:
    """What ended sessions counted, plus the server's own counts."""

    audio_in_s: float = 0.0
    audio_out_s: float = 0.0
    dropped: Counter[str] = field(default_factory=Counter)
    underruns: int = 0
    barge_ins: int = 0
    responder_errors: int = 0
    rate_changes: int = 0
    refused: Counter[int] = field(default_factory=Counter)  # handshakes, by HTTP status
    loop_lag: Histogram = field(default_factory=lambda: Histogram(LOOP_LAG_BUCKETS_S))
    added_latency: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS_S))
    loop_blocked: int = 0
    accept_failures: int = 0  # accepts that failed for want of file descriptors

    def add_session(self, session: Session) -> None:
        """Fold an ended session's counts in."""
        for name, value in session_counts(session).items():
            if name == "dropped":
                self.dropped.update(value)
            else:
                setattr(self, name, getattr(self, name) + value)
        self.added_latency.merge(session.added_latency)


def session_counts(session: Session) -> dict[str, Any]:
    """The counters of one session, named as in Totals."""
    dropped = Counter(session.stats.dropped)
    for runner in session.runners:
        for hook, n in runner.dropped.items():
            dropped[f"responder_queue_{hook}"] += n
    if session.events.dropped:
        dropped["event_subscriber_behind"] += session.events.dropped
    return {
        "audio_in_s": session.position_ms() / 1000,
        "audio_out_s": session.playout.seconds_out,
        "rate_changes": session.stats.rate_changes,
        "dropped": dropped,
        "underruns": session.playout.pacer.underruns,
        "barge_ins": session.stats.barge_ins,
        "responder_errors": sum(r.errors for r in session.runners),
    }


@dataclass
class Scrape:
    """One scrape's reading: the totals as it began, and each session live then."""

    totals: Totals
    counts: list[dict[str, Any]]
    sockets: int = 0
    subscribers: int = 0  # control channels
    by_phase: Counter[str] = field(default_factory=Counter)
    latency: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS_S))

    @classmethod
    async def read(cls, totals: Totals, sessions: list[Session]) -> Scrape:
        """Copy the totals, then read the sessions a slice at a time. A session that ends
        meanwhile is read as it ended: the copy is from before it was folded in, so each
        counts once, and no counter goes back at the next scrape."""
        scrape = cls(copy.deepcopy(totals), [])
        scrape.latency.merge(scrape.totals.added_latency)
        for start in range(0, len(sessions), SCRAPE_SLICE):
            if start:
                await asyncio.sleep(0)
            for session in sessions[start : start + SCRAPE_SLICE]:
                scrape.add(session)
        return scrape

    def add(self, session: Session) -> None:
        self.counts.append(session_counts(session))
        self.sockets += len(session.links)
        self.subscribers += session.events.subscribers
        self.by_phase[session.phase] += 1
        self.latency.merge(session.added_latency)

    def total(self, name: str) -> float:
        """A counter over ended and live sessions."""
        return getattr(self.totals, name) + sum(c[name] for c in self.counts)


class BridgeCollector:
    """The metrics over the session table and the server totals (page() reads them)."""

    def __init__(self, table: SessionTable, totals: Totals, gate: ConnectionGate) -> None:
        self.table = table
        self.totals = totals
        self.more: list[Callable[[], Iterable[Any]]] = []  # other parts' metric families
        self.gate = gate

    async def page(self) -> tuple[bytes, str]:
        """The metrics page and its content type, the sessions read a slice at a time."""
        scrape = await Scrape.read(self.totals, list(self.table.sessions.values()))
        registry = prometheus_client.CollectorRegistry(auto_describe=False)
        registry.register(_Families(self, scrape))  # type: ignore[arg-type]
        return prometheus_client.generate_latest(registry), prometheus_client.CONTENT_TYPE_LATEST

    def families(self, scrape: Scrape) -> Iterator[Any]:
        """Every metric family of one scrape."""
        t, total = scrape.totals, scrape.total
        yield GaugeMetricFamily(
            "speakbridge_sessions_active", "Live sessions", value=len(scrape.counts)
        )
        yield CounterMetricFamily(
            "speakbridge_sessions", "Sessions created", value=self.table.total
        )
        yield GaugeMetricFamily("speakbridge_sockets", "Open bot sockets", value=scrape.sockets)
        yield CounterMetricFamily(
            "speakbridge_audio_in_seconds", "Meeting audio received", value=total("audio_in_s")
        )
        yield CounterMetricFamily(
            "speakbridge_audio_out_seconds", "Speech sent to bots", value=total("audio_out_s")
        )
        dropped = CounterMetricFamily(
            "speakbridge_dropped",
            "Messages, frames and events dropped, by reason",
            labels=["reason"],
        )
        dropped_now = Counter(t.dropped)
        for counts in scrape.counts:
            dropped_now.update(counts["dropped"])
        for reason, n in dropped_now.items():
            dropped.add_metric([reason], n)
        yield dropped
        yield CounterMetricFamily(
            "speakbridge_underruns", "Gaps in a bot's playback mid-stream", value=total("underruns")
        )
        yield CounterMetricFamily(
            "speakbridge_barge_ins", "Bot speech cut by user speech", value=total("barge_ins")
        )
        yield CounterMetricFamily(
            "speakbridge_rate_changes",
            "Hellos that changed a session's sample rate mid-session",
            value=total("rate_changes"),
        )
        phases = GaugeMetricFamily(
            "speakbridge_sessions_by_phase", "Live sessions by phase", labels=["phase"]
        )
        for phase in ("connected", "in_call"):
            phases.add_metric([phase], scrape.by_phase[phase])
        yield phases
        yield CounterMetricFamily(
            "speakbridge_reconnects_refused_ended",
            "Reconnects to a session ended on purpose, refused with 410",
            value=self.table.refused_ended,
        )
        yield CounterMetricFamily(
            "speakbridge_responder_errors",
            "Responder hooks that raised",
            value=total("responder_errors"),
        )
        refused = CounterMetricFamily(
            "speakbridge_handshakes_refused",
            "Requests refused before the upgrade, by HTTP status",
            labels=["status"],
        )
        for status, n in t.refused.items():
            refused.add_metric([str(status)], n)
        yield refused
        yield HistogramMetricFamily(
            "speakbridge_event_loop_lag_seconds",
            "Event-loop lateness of the watchdog's ticks",
            buckets=t.loop_lag.cumulative(),
            sum_value=t.loop_lag.sum,
        )
        yield HistogramMetricFamily(
            "speakbridge_added_latency_seconds",
            "From reading a bot frame off its socket to the write of its echo (echo live)",
            buckets=scrape.latency.cumulative(),
            sum_value=scrape.latency.sum,
        )
        yield CounterMetricFamily(
            "speakbridge_event_loop_blocked",
            "Times the loop was blocked past the watchdog threshold",
            value=t.loop_blocked,
        )
        yield from self._caps(scrape)
        yield GaugeMetricFamily(
            "speakbridge_tasks", "asyncio tasks alive in the server", value=len(asyncio.all_tasks())
        )
        for families in self.more:
            yield from families()

    def _caps(self, scrape: Scrape) -> Iterator[Any]:
        """What the connection caps hold and what they refused (docs/security.md)."""
        yield GaugeMetricFamily(
            "speakbridge_pending_handshakes",
            "Connections that have not finished the opening handshake",
            value=self.gate.pending,
        )
        yield GaugeMetricFamily(
            "speakbridge_control_clients",
            "Control channels open, all sessions",
            value=scrape.subscribers,
        )
        refused = CounterMetricFamily(
            "speakbridge_connections_refused",
            "Connections dropped before their request: a cap was reached",
            labels=["reason"],
        )
        for reason, n in self.gate.refused.items():
            refused.add_metric([reason], n)
        yield refused
        yield CounterMetricFamily(
            "speakbridge_accept_failures",
            "Accepts that failed for want of file descriptors",
            value=scrape.totals.accept_failures,
        )


@dataclass(eq=False)  # the registry keeps its collectors in a dict
class _Families:
    """What prometheus-client's registry collects: one scrape's families."""

    collector: BridgeCollector
    scrape: Scrape

    def collect(self) -> Iterator[Any]:
        return self.collector.families(self.scrape)
