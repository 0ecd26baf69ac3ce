"""Prometheus metrics, read from the sessions at scrape time: nothing on the audio path.

Counters of ended sessions are folded into server totals when each session ends; a scrape
adds the live sessions' current counts, in prometheus-client's text format.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import prometheus_client
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from bridge.server.histogram import LATENCY_BUCKETS_S, LOOP_LAG_BUCKETS_S, Histogram

if TYPE_CHECKING:
    from bridge.server.session import Session
    from bridge.server.sessions import SessionTable


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

    def add_session(self, session: Session) -> None:
        """Fold an ended session's counts in."""
        for name, value in session_counts(session).items():
            if name == "dropped":
                self.dropped.update(value)
            else:
                setattr(self, name, getattr(self, name) + value)
        self.added_latency.merge(session.added_latency)

    def latency(self, live: list[Session]) -> Histogram:
        """Added latency of ended and live sessions together."""
        merged = Histogram(LATENCY_BUCKETS_S)
        for histogram in [self.added_latency, *(s.added_latency for s in live)]:
            merged.merge(histogram)
        return merged


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


class BridgeCollector:
    """A prometheus-client collector over the session table and the server totals."""

    def __init__(self, table: SessionTable, totals: Totals) -> None:
        self.table = table
        self.totals = totals

    def collect(self) -> Iterator[Any]:
        live = [session_counts(s) for s in self.table.sessions.values()]
        t = self.totals

        def total(name: str) -> float:
            return getattr(t, name) + sum(c[name] for c in live)

        yield GaugeMetricFamily(
            "speakbridge_sessions_active", "Live sessions", value=len(self.table.sessions)
        )
        yield CounterMetricFamily(
            "speakbridge_sessions", "Sessions created", value=self.table.total
        )
        yield GaugeMetricFamily(
            "speakbridge_sockets",
            "Open bot sockets",
            value=sum(len(s.links) for s in self.table.sessions.values()),
        )
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
        for reason, n in (t.dropped + sum((c["dropped"] for c in live), Counter())).items():
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
        by_phase = Counter(s.phase for s in self.table.sessions.values())
        for phase in ("connected", "in_call"):
            phases.add_metric([phase], by_phase[phase])
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
        latency = t.latency(list(self.table.sessions.values()))
        yield HistogramMetricFamily(
            "speakbridge_added_latency_seconds",
            "From reading a bot frame off its socket to the write of its echo (echo live)",
            buckets=latency.cumulative(),
            sum_value=latency.sum,
        )
        yield CounterMetricFamily(
            "speakbridge_event_loop_blocked",
            "Times the loop was blocked past the watchdog threshold",
            value=t.loop_blocked,
        )
        yield GaugeMetricFamily(
            "speakbridge_tasks", "asyncio tasks alive in the server", value=len(asyncio.all_tasks())
        )


def exposition(collector: BridgeCollector) -> tuple[bytes, str]:
    """The metrics page and its content type."""
    registry = prometheus_client.CollectorRegistry(auto_describe=False)
    registry.register(collector)  # type: ignore[arg-type]
    return prometheus_client.generate_latest(registry), prometheus_client.CONTENT_TYPE_LATEST
