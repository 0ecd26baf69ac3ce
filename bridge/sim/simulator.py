"""A simulated Meeting BaaS bot: speaks a recording into the bridge and plays what comes back.

It behaves as the real bot does: hello first, a burst of audio buffered while connecting,
then real-time chunks, with speaker events around each recording. What returns is played
through a model of the bot's real-time player, which measures lead, gaps and latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI

from bridge.codecs.wav import read_wav, write_wav
from bridge.logs import counted
from bridge.wire.signing import redact_token

SPEAKER = {"name": "Simulated Speaker", "id": 1}
STALL_TICK_S = 0.005  # how often the simulator checks that its own event loop keeps time
STALL_THRESHOLD_S = 0.015  # a check this late: the simulator itself was held up
STALL_REACH_S = 0.1  # a stall this long before a gap may cause it: a chunk sent late echoes late


class PlayerModel:
    """The bot's player: each message plays once the previous has, never before it arrives.

    A gap shorter than pause_ms between two messages is an underrun; longer is a pause.
    """

    def __init__(self, sample_rate: int, origin: float, pause_ms: float = 300.0) -> None:
        self.sample_rate = sample_rate
        self.origin = origin  # clock time of sample 0 of the timeline
        self.pause = pause_ms / 1000
        self.play_end = 0.0
        self.chunks: list[tuple[int, np.ndarray]] = []  # (timeline sample, audio)
        self.arrivals: list[float] = []
        self.leads: list[float] = []
        self.underruns = 0
        self.gaps: list[tuple[float, float]] = []  # (ran dry, next message) of each underrun
        self.pauses = 0
        self.odd_messages = 0

    def receive(self, now: float, data: bytes) -> None:
        """Play one binary message that arrived at clock time now."""
        if len(data) % 2:
            self.odd_messages += 1  # the real bot drops these
            return
        samples = np.frombuffer(data, dtype="<i2")
        if self.play_end and now > self.play_end:
            if now - self.play_end < self.pause:
                self.underruns += 1
                self.gaps.append((self.play_end, now))
            else:
                self.pauses += 1
        start = max(self.play_end, now)
        self.play_end = start + len(samples) / self.sample_rate
        self.chunks.append((round((start - self.origin) * self.sample_rate), samples))
        self.arrivals.append(now)
        self.leads.append(self.play_end - now)

    def timeline(self, length: int) -> np.ndarray:
        """What the meeting heard from the bot, on the simulator's timeline (silence between)."""
        end = max([length] + [at + len(s) for at, s in self.chunks])
        out = np.zeros(end, dtype="<i2")
        for at, samples in self.chunks:
            out[at : at + len(samples)] = samples
        return out


class LoopStalls:
    """When the simulator's own event loop was held up (descheduled by the OS, or busy).

    The player hears a message when the simulator reads it, so a gap during such a stall
    may be the simulator's doing rather than the bridge's: those are reported apart.
    """

    def __init__(
        self, tick_s: float = STALL_TICK_S, threshold_s: float = STALL_THRESHOLD_S
    ) -> None:
        self.tick_s = tick_s
        self.threshold_s = threshold_s
        self.intervals: list[tuple[float, float]] = []  # (due, arrived) of each late check
        self._last: float | None = None

    def beat(self, now: float) -> None:
        """A check, due tick_s after the previous one, ran at clock time now."""
        if self._last is not None:
            due = self._last + self.tick_s
            if now - due > self.threshold_s:
                self.intervals.append((due, now))
        self._last = now

    def explain(self, gap: tuple[float, float]) -> bool:
        """Whether a stall overlaps a playback gap, or ended within STALL_REACH_S before it."""
        start, end = gap
        return any(s <= end and e >= start - STALL_REACH_S for s, e in self.intervals)

    async def watch(self) -> None:
        """Check the loop every tick_s until cancelled."""
        while True:
            self.beat(time.monotonic())
            await asyncio.sleep(self.tick_s)


@dataclass
class Utterance:
    """One recording as the simulator spoke it."""

    name: str
    start: int  # timeline sample
    samples: np.ndarray
    end_time: float = 0.0  # clock time its last chunk was sent
    reply_latency_ms: float | None = None
    echo_delay_ms: float | None = None
    echo_correlation: float | None = None


@dataclass
class SimulationReport:
    """What a simulation measured; str() is the human-readable summary."""

    sample_rate: int
    bytes_sent: int = 0
    bytes_received: int = 0
    messages_received: int = 0
    utterances: list[Utterance] = field(default_factory=list)
    leads_ms: list[float] = field(default_factory=list)
    underruns: int = 0  # gaps the bridge caused (none while the simulator was stalled)
    gaps_in_own_stalls: int = 0  # gaps while the simulator itself was held up: not the bridge's
    pauses: int = 0
    close_code: int | None = None
    output_wav: str | None = None

    def __str__(self) -> str:
        lines = [
            f"sent {self.bytes_sent} B ({self.bytes_sent / 2 / self.sample_rate:.2f} s at "
            f"{self.sample_rate} Hz), received {self.bytes_received} B "
            f"({self.bytes_received / 2 / self.sample_rate:.2f} s) in "
            f"{counted(self.messages_received, 'message')}",
        ]
        for u in self.utterances:
            heard = (
                "no reply"
                if u.reply_latency_ms is None
                else (f"reply {u.reply_latency_ms:.0f} ms after it ended")
            )
            if u.echo_correlation is not None:
                heard += (
                    f", echo delay {u.echo_delay_ms:.0f} ms, correlation {u.echo_correlation:.3f}"
                )
            lines.append(f"  {u.name}: {len(u.samples) / self.sample_rate:.2f} s spoken; {heard}")
        if self.leads_ms:
            lines.append(
                f"pacing lead at the player: p50 {np.percentile(self.leads_ms, 50):.1f} ms, "
                f"max {max(self.leads_ms):.1f} ms; underruns {self.underruns}, pauses {self.pauses}"
            )
        if self.gaps_in_own_stalls:
            lines.append(
                f"gaps while the simulator itself was stalled: {self.gaps_in_own_stalls} "
                "(not counted as the bridge's underruns)"
            )
        if self.output_wav:
            lines.append(f"what the meeting heard from the bot: {self.output_wav}")
        return "\n".join(lines)


@dataclass
class SimulatorOptions:
    """How the simulated bot behaves."""

    sample_rate: int = 24000
    chunk_ms: int = 20
    burst_chunks: int = 10  # chunks buffered while connecting, sent at once
    lead_in_s: float = 0.5  # silence before the first recording
    gap_s: float = 2.0  # silence after each recording, for the reply
    listen_s: float = 2.0  # how long to keep listening once everything is sent
    bot_id: str = "simulated-bot"


def with_rate(url: str, sample_rate: int) -> str:
    """The URL with ?rate=sample_rate added, unless it already names a rate."""
    parts = urlsplit(url)
    if "rate" in parse_qs(parts.query):
        return url
    query = f"{parts.query}&rate={sample_rate}" if parts.query else f"rate={sample_rate}"
    return urlunsplit(parts._replace(query=query))


def load_script(paths: list[str], opts: SimulatorOptions) -> tuple[np.ndarray, list[Utterance]]:
    """The whole timeline to speak: lead-in silence, then each recording followed by a gap."""
    rate = opts.sample_rate
    pieces = [np.zeros(int(opts.lead_in_s * rate), dtype="<i2")]
    utterances, position = [], len(pieces[0])
    for path in paths:
        samples, _ = read_wav(path, rate)
        utterances.append(Utterance(Path(path).stem, position, samples))
        pieces += [samples, np.zeros(int(opts.gap_s * rate), dtype="<i2")]
        position += len(samples) + len(pieces[-1])
    return np.concatenate(pieces), utterances


async def simulate(
    urls: list[str], wavs: list[str], opts: SimulatorOptions, output_wav: str | None = None
) -> SimulationReport:
    """Run one simulated bot against the bridge at urls (one: both ways; two: output, input)."""
    timeline, utterances = load_script(wavs, opts)
    report = SimulationReport(opts.sample_rate, utterances=utterances)
    urls = [with_rate(u, opts.sample_rate) for u in urls]
    async with contextlib.AsyncExitStack() as stack:
        source = await stack.enter_async_context(_connect(urls[0]))
        sink = source
        if len(urls) > 1:
            sink = await stack.enter_async_context(_connect(urls[1]))
        chunk = opts.sample_rate * opts.chunk_ms // 1000
        origin = time.monotonic() - opts.burst_chunks * chunk / opts.sample_rate
        player = PlayerModel(opts.sample_rate, origin)
        stalls = LoopStalls()
        watcher = asyncio.create_task(stalls.watch())
        listener = asyncio.create_task(_listen(sink, player, report))
        try:
            hello = {"protocol_version": 1, "bot_id": opts.bot_id, "offset": 0.0}
            await source.send(json.dumps(hello))
            await _speak(source, timeline, utterances, chunk, origin, opts, report)
            await asyncio.sleep(opts.listen_s)
        finally:  # also when the bridge closed on us mid-speech
            for task in (listener, watcher):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        report.close_code = source.close_code
    _measure(report, player, stalls, timeline)
    if output_wav:
        write_wav(output_wav, player.timeline(len(timeline)), opts.sample_rate)
        report.output_wav = output_wav
    return report


@contextlib.asynccontextmanager
async def _connect(url: str) -> AsyncIterator[ClientConnection]:
    """A socket to the bridge; a failed connect raises ConnectionError naming the URL (its
    token hidden) and the bridge's refusal, if it gave one."""
    try:
        ws = await connect(url, compression=None)
    except InvalidStatus as exc:
        body = exc.response.body.decode(errors="replace").strip()
        reason = f"HTTP {exc.response.status_code} {body}".strip()
        raise ConnectionError(f"cannot connect to {redact_token(url)}: {reason}") from None
    except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
        raise ConnectionError(f"cannot connect to {redact_token(url)}: {exc}") from None
    async with ws:
        yield ws


async def _speak(
    ws: ClientConnection,
    timeline: np.ndarray,
    utterances: list[Utterance],
    chunk: int,
    origin: float,
    opts: SimulatorOptions,
    report: SimulationReport,
) -> None:
    """Send the timeline: chunk k is due at origin + its time, so the first ones go in a burst."""
    marks = sorted(
        [(u.start, True, u) for u in utterances]
        + [(u.start + len(u.samples), False, u) for u in utterances],
        key=lambda m: m[0],
    )
    for start in range(0, len(timeline), chunk):
        due = origin + start / opts.sample_rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        while marks and marks[0][0] <= start:
            _, speaking, utterance = marks.pop(0)
            if not speaking:
                utterance.end_time = time.monotonic()
            state = {**SPEAKER, "timestamp": int(time.time() * 1000), "isSpeaking": speaking}
            await ws.send(json.dumps([state]))
        data = timeline[start : start + chunk].tobytes()
        await ws.send(data)
        report.bytes_sent += len(data)


async def _listen(ws: ClientConnection, player: PlayerModel, report: SimulationReport) -> None:
    async for message in ws:
        if isinstance(message, bytes):
            player.receive(time.monotonic(), message)
            report.bytes_received += len(message)
            report.messages_received += 1


def _measure(
    report: SimulationReport, player: PlayerModel, stalls: LoopStalls, timeline: np.ndarray
) -> None:
    report.leads_ms = [lead * 1000 for lead in player.leads]
    report.gaps_in_own_stalls = sum(map(stalls.explain, player.gaps))
    report.underruns = player.underruns - report.gaps_in_own_stalls
    report.pauses = player.pauses
    # padded with the silence that follows, so an echo shorter than its recording (the VAD
    # trims a quiet tail) still aligns when it ends near the end of the timeline
    longest = max((len(u.samples) for u in report.utterances), default=0)
    heard = player.timeline(len(timeline) + longest)
    for u in report.utterances:
        after = [t for t in player.arrivals if t >= u.end_time]
        if u.end_time and after:
            u.reply_latency_ms = (after[0] - u.end_time) * 1000
        lag, corr = best_alignment(u.samples, heard[u.start :])
        if corr is not None:
            u.echo_delay_ms = lag * 1000 / report.sample_rate
            u.echo_correlation = corr


def best_alignment(needle: np.ndarray, haystack: np.ndarray) -> tuple[int, float | None]:
    """Lag of needle in haystack by FFT cross-correlation, and the normalised correlation there."""
    if len(haystack) < len(needle) or not np.any(needle):
        return 0, None
    a = needle.astype(np.float64)
    b = haystack.astype(np.float64)
    size = 1 << (len(a) + len(b)).bit_length()
    xcorr = np.fft.irfft(np.fft.rfft(b, size) * np.conj(np.fft.rfft(a, size)), size)
    lag = int(np.argmax(xcorr[: len(b) - len(a) + 1]))
    window = b[lag : lag + len(a)]
    denom = float(np.linalg.norm(a) * np.linalg.norm(window))
    return lag, (float(np.dot(a, window)) / denom if denom else 0.0)
