"""A simulated Meeting BaaS bot: speaks a recording into the bridge and plays what comes back.

It behaves as the real bot does: hello first, a burst of audio buffered while connecting,
then real-time chunks, with the whole roster each time who speaks changes; each generation
(gen1, gen3, v2: bridge.sim.generations) with its message size, hello, roster, reconnects
and way of leaving. What returns is played through a model of the bot's real-time player,
which measures lead, gaps and latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from bridge.codecs.wav import read_wav, write_wav
from bridge.logs import counted
from bridge.sim.generations import PROFILES, BotProfile, Generation, Stop
from bridge.wire.signing import redact_token

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

    def played(self, at: int, count: int) -> np.ndarray:
        """The bot's audio the meeting heard over timeline samples [at, at + count)."""
        out = np.zeros(count, dtype=np.float64)
        for start, samples in reversed(self.chunks):  # in timeline order: the newest last
            if start + len(samples) <= at:
                break
            lo, hi = max(at, start), min(at + count, start + len(samples))
            if lo < hi:
                out[lo - at : hi - at] += samples[lo - start : hi - start]
        return out

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
    speaker: str = "Simulated Speaker"
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
    close_code: int | None = None  # of the first socket the bridge closed (or ours, at the end)
    reconnects: int = 0  # attempts after the bridge closed the socket (gen3, v2)
    refused: list[int] = field(default_factory=list)  # HTTP statuses of refused reconnects
    bytes_dropped_while_down: int = 0
    first_audio_at: float | None = None  # clock time the first of the bridge's audio arrived
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
    """How the simulated bot behaves; `bot` picks a generation's wire habits (generations.py)."""

    sample_rate: int = 24000
    chunk_ms: int = 20  # the custom profile's message length; the generations have their own
    burst_chunks: int = 10  # chunks buffered while connecting, sent at once
    start_late_ms: float = 0.0  # the first chunk goes this late, the rest on time: the margin
    lead_in_s: float = 0.5  # silence before the first recording
    gap_s: float = 2.0  # silence after each recording, for the reply
    listen_s: float = 2.0  # how long to keep listening once everything is sent
    bot_id: str = "simulated-bot"
    bot: Generation = "custom"
    speakers: tuple[str, ...] = ("Simulated Speaker",)  # recording i is spoken by i % len
    bot_name: str = "speakbridge"  # the bot's own roster entry (gen3 lists itself)
    waiting_room_s: float = 0.0  # connected and said hello, not yet admitted: sends nothing
    echo_delay_ms: float | None = None  # the bot's own audio comes back in the meeting's this late
    echo_gain_db: float = -12.0  # and this much quieter


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
    for index, path in enumerate(paths):
        samples, _ = read_wav(path, rate)
        speaker = opts.speakers[index % len(opts.speakers)]
        utterances.append(Utterance(Path(path).stem, position, samples, speaker))
        pieces += [samples, np.zeros(int(opts.gap_s * rate), dtype="<i2")]
        position += len(samples) + len(pieces[-1])
    return np.concatenate(pieces), utterances


async def simulate(
    urls: list[str], wavs: list[str], opts: SimulatorOptions, output_wav: str | None = None
) -> SimulationReport:
    """Run one simulated bot against the bridge at urls (one: both ways; two: output, input)."""
    timeline, utterances = load_script(wavs, opts)
    report = SimulationReport(opts.sample_rate, utterances=utterances)
    profile = PROFILES[opts.bot]
    if not profile.announces_rate:
        urls = [with_rate(u, opts.sample_rate) for u in urls]
    chunk = profile.samples_per_message(opts.sample_rate, opts.chunk_ms)
    origin = time.monotonic() - opts.burst_chunks * chunk / opts.sample_rate + opts.waiting_room_s
    bot = SimulatedBot(urls, profile, opts, report, PlayerModel(opts.sample_rate, origin))
    stalls = LoopStalls()
    watcher = asyncio.create_task(stalls.watch())
    try:
        try:
            await bot.connect()
        except (OSError, InvalidHandshake, InvalidURI) as exc:  # say which URL, and why
            raise ConnectionError(_cannot_connect(bot.opening, exc)) from None
        if opts.waiting_room_s:
            await asyncio.sleep(opts.waiting_room_s)
        await bot.send_roster()  # admitted: the roster as the bot finds it
        await asyncio.sleep(opts.start_late_ms / 1000)
        await _speak(bot, timeline, utterances, chunk, origin, opts)
        await asyncio.sleep(opts.listen_s)
    finally:  # also when the bridge closed on us mid-speech
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await bot.stop()
    _measure(report, bot.player, stalls, timeline)
    if output_wav:
        write_wav(output_wav, bot.player.timeline(len(timeline)), opts.sample_rate)
        report.output_wav = output_wav
    return report


class SimulatedBot:
    """The bot's sockets: hello on open, rosters, audio; reconnects as its generation does
    (audio captured while a socket is down is dropped, as the real bots do)."""

    def __init__(
        self,
        urls: list[str],
        profile: BotProfile,
        opts: SimulatorOptions,
        report: SimulationReport,
        player: PlayerModel,
    ) -> None:
        self.urls = urls
        self.profile = profile
        self.opts = opts
        self.report = report
        self.player = player
        self.speaking = dict.fromkeys(opts.speakers, False)
        self.playing = False  # the bridge's audio is playing in the meeting
        self._source: ClientConnection | None = None
        self._sockets: list[ClientConnection] = []
        self._listener: asyncio.Task[None] | None = None
        self._reconnect: asyncio.Task[None] | None = None
        self.opening = urls[0]  # the URL connect() is opening: the one a failure names

    async def connect(self) -> None:
        """Open the socket(s), say hello and start playing what comes back; raise if refused."""
        self.opening = self.urls[0]
        source = await _open(self.urls[0])
        sockets = [source]
        if len(self.urls) > 1:
            try:
                self.opening = self.urls[1]
                sockets.append(await _open(self.urls[1]))
            except BaseException:
                source.transport.abort()
                raise
        self._source, self._sockets = source, sockets
        self._listener = asyncio.create_task(self._listen(sockets[-1]))
        hello = self.profile.hello(self.opts.bot_id, self.opts.sample_rate)
        await source.send(json.dumps(hello))

    async def send(self, message: str | bytes) -> bool:
        """Send on the output socket; False (and counted) while it is down."""
        source = self._source
        if source is None:
            if isinstance(message, bytes):
                self.report.bytes_dropped_while_down += len(message)
            return False
        try:
            await source.send(message)
        except ConnectionClosed:
            self._lost(source)
            return False
        if isinstance(message, bytes):
            self.report.bytes_sent += len(message)
        return True

    async def send_roster(self) -> None:
        """The whole roster: the speakers and, for gen3, the bot itself while it plays."""
        speaking = dict(self.speaking)
        if self.profile.lists_self:  # a recording given to the bot's name: its voice coming back
            speaking[self.opts.bot_name] = self.playing or speaking.get(self.opts.bot_name, False)
        await self.send(json.dumps(self.profile.roster(speaking, time.time())))

    async def note_playback(self, now: float) -> None:
        """gen3 lists itself as speaking while what the bridge sent is playing."""
        playing = now < self.player.play_end
        if self.profile.lists_self and playing != self.playing:
            self.playing = playing
            await self.send_roster()

    async def stop(self) -> None:
        """Leave as the generation does: close, close without a code, or drop the connection."""
        for task in (self._listener, self._reconnect):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for ws in self._sockets:
            await _leave(ws, self.profile.stop)
        if self._source is not None and self.report.close_code is None:
            self.report.close_code = self._source.close_code

    def _lost(self, source: ClientConnection) -> None:
        if self._source is not source:
            return
        if self.report.close_code is None:
            self.report.close_code = source.close_code
        self._source = None
        for ws in self._sockets:
            ws.transport.abort()
        if self.profile.reconnects and self._reconnect is None:
            self._reconnect = asyncio.create_task(self._reconnect_loop())

    async def _reconnect_loop(self) -> None:
        attempt = 0
        while True:
            await asyncio.sleep(self.profile.backoff_s(attempt))
            attempt += 1
            self.report.reconnects += 1
            try:
                await self.connect()
            except InvalidStatus as exc:
                self.report.refused.append(exc.response.status_code)
                continue
            except OSError:
                self.report.refused.append(0)
                continue
            self._reconnect = None
            return

    async def _listen(self, ws: ClientConnection) -> None:
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    if self.report.first_audio_at is None:
                        self.report.first_audio_at = time.monotonic()
                    self.player.receive(time.monotonic(), message)
                    self.report.bytes_received += len(message)
                    self.report.messages_received += 1
        except ConnectionClosed:
            pass
        if self._source is not None and ws in self._sockets:
            self._lost(self._source)


def _cannot_connect(url: str, exc: Exception) -> str:
    """One line: the URL (its token hidden) and the bridge's refusal or the network's error."""
    if isinstance(exc, InvalidStatus):
        body = exc.response.body.decode(errors="replace").strip()
        reason = f"HTTP {exc.response.status_code} {body}".strip()
    else:
        reason = str(exc) or type(exc).__name__
    return f"cannot connect to {redact_token(url)}: {reason}"


async def _open(url: str) -> ClientConnection:
    return await connect(url, compression=None, open_timeout=10)


async def _leave(ws: ClientConnection, how: Stop) -> None:
    if how == "abort":
        ws.transport.abort()
    elif how == "close_without_code":
        with contextlib.suppress(ConnectionClosed):
            async with ws.send_context():
                ws.protocol.send_close()  # an empty close frame: the bridge sees 1005
        ws.transport.close()
    else:
        await ws.close()


async def _speak(
    bot: SimulatedBot,
    timeline: np.ndarray,
    utterances: list[Utterance],
    chunk: int,
    origin: float,
    opts: SimulatorOptions,
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
        changed = False
        while marks and marks[0][0] <= start:
            _, speaking, utterance = marks.pop(0)
            if not speaking:
                utterance.end_time = time.monotonic()
            bot.speaking[utterance.speaker] = speaking
            changed = True
        if changed:
            await bot.send_roster()
        await bot.note_playback(time.monotonic())
        await bot.send(_with_echo(bot.player, timeline[start : start + chunk], start, opts))


def _with_echo(player: PlayerModel, chunk: np.ndarray, at: int, opts: SimulatorOptions) -> bytes:
    """The meeting's audio with the bot's own voice mixed back in, if the options say so."""
    if opts.echo_delay_ms is None:
        return chunk.tobytes()
    delay = round(opts.echo_delay_ms * opts.sample_rate / 1000)
    echo = player.played(at - delay, len(chunk)) * 10 ** (opts.echo_gain_db / 20)
    return np.clip(chunk + echo, -32768, 32767).astype("<i2").tobytes()


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
