"""Load generator: N simulated bots streaming real speech at real time into one bridge.

    .venv/bin/python -m benchmarks.load --ramp 25,50,100 --duration 20 [--out FILE]

Each bot sends the hello and a speaker event, then a chunk of a real recording every
chunk-ms, and plays what comes back through a model of the bot's player (a 40 ms device
buffer, running from the first echo: what the server sent ahead adds to it). The bridge
runs in its own process, pinned to one core (the generator takes the other), with the live
echo responder, so each frame's echo can be timed:

- added latency: the server's own timestamps, frame arrival to echo sent (its /metrics);
- round trip: measured by the bots, send to echo received (not given for a step that
  dropped frames: the bots map received samples to sent chunks);
- pacing: lead at the player, underruns (the player ran dry: audible gaps; each echo is
  placed as if its chunk had been sent on time, so the generator's own lateness, reported
  as generator_late_ms, is not blamed on the bridge), late ticks (a whole chunk late), and the
  server pacer's underruns (with live echo and no prebuffer these count input jitter of a
  millisecond or more, which the bot's device buffer hides; reported, not a criterion);
- server CPU (share of its core) and RSS, per session; the hypervisor's steal on the
  server's core (host_steal_share: on a shared VM, a burst of steal stalls every session)
  and on the generator's (a stalled generator hears echoes late: the player model then
  counts underruns the bridge did not cause); per 10 s in a long step, to see which.

A step passes when p99 added latency < 5 ms, no underruns and nothing dropped; the largest
passing N is the capacity on this machine. `--workers N` runs `speakbridge serve --workers
N` instead (unpinned; each bot connects to its session's worker; CPU, RSS and metrics are
summed over the workers).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import gc
import json
import math
import os
import platform
import re
import socket
import subprocess
import sys
import time
import zlib
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.floor import LIBRARIES
from benchmarks.wsclient import OP_BINARY, BotClient, connect, encode_frame
from bridge.codecs.wav import read_wav
from bridge.server import loops
from bridge.server.histogram import LATENCY_BUCKETS_S, LOOP_LAG_BUCKETS_S, Histogram
from bridge.sim.generations import PROFILES, BotProfile
from bridge.wire.protocol import SUPPORTED_RATES

SPEECH = ["Front_Left", "Front_Right", "Rear_Left", "Rear_Right", "Side_Left", "Side_Right"]
PLAYER_BUFFER_S = 0.040
P99_LIMIT_S = 0.005
GENERATOR_CORE = 1  # when pinned; the server takes core 0
SUSTAINED_CPU_SHARE = 0.9  # of the server's core: above it, a step is not sustainable
PHASE_S = 0.001  # a phase group a millisecond of the chunk period (uvloop's timer resolution)
LOOP_LAG = "speakbridge_event_loop_lag_seconds"
DROPPED = "speakbridge_dropped_total"
HISTOGRAMS = {  # the server's histograms a step reports, with their bucket bounds
    "speakbridge_added_latency_seconds": LATENCY_BUCKETS_S,
    LOOP_LAG: LOOP_LAG_BUCKETS_S,
}
MASK_KEYS = [os.urandom(4) for _ in range(8)]  # each bot masks with one (benchmarks/wsclient.py)
TIMER_SLACK_S = 0.001  # a phase group may go this much before it is due (the timer's resolution)
CONNECTS_AT_ONCE = 64  # handshakes in flight while a step opens its bots
STALL_S = 0.025  # a loop this late holds a frame past most of the bot's 40 ms buffer
ECHO_FRAME_S = 0.020  # the server's output frame: echoes come at most one a frame
Scrape = tuple[dict[str, float], dict[str, Histogram]]


class Series:
    """Floats appended one at a time into room made for the whole step. (An array('d')
    that grows reallocates and copies itself; every bot's grew in step with the others',
    so all copied in one tick: a generator stall that grew with the step, 80 ms after 4
    minutes of 400 bots, 270 ms in a 30-minute soak, each heard as underruns everywhere.)
    Past its room it doubles, which a step sized right never does."""

    __slots__ = ("data", "size")

    def __init__(self, room: int = 64) -> None:
        self.data = array("d", bytes(8 * max(1, room)))
        self.size = 0

    def append(self, value: float) -> None:
        if self.size == len(self.data):
            self.data.extend(self.data)
        self.data[self.size] = value
        self.size += 1

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> float:
        return self.data[index]  # unchecked past size: the hot path checks len() itself

    def __iter__(self) -> Iterator[float]:
        return iter(self.data[: self.size])

    def values(self) -> np.ndarray:
        """The floats appended so far (a view)."""
        return np.frombuffer(self.data)[: self.size]


@dataclass
class BotStats:
    """What one simulated bot measured (in arrays: a full GC pass over lists of millions of
    floats takes tens of ms, and would make the generator itself late in a long soak)."""

    rtts: Series = field(default_factory=Series)
    received: int = 0  # samples
    underruns: int = 0
    leads: Series = field(default_factory=Series)


class DeviceBufferPlayer:
    """The bot's audio player with a device buffer: it starts, and restarts after running
    dry, once buffer_s is queued. What the server sends ahead (its prebuffer) adds to that."""

    def __init__(self, rate: int, buffer_s: float = PLAYER_BUFFER_S) -> None:
        self.rate, self.buffer_s = rate, buffer_s
        self.play_end = 0.0  # clock time at which everything received has played

    def play(self, now: float, samples: int) -> bool:
        """Queue samples that arrived at now; True if the player had run dry (a gap)."""
        ran_dry = now > self.play_end
        if ran_dry:
            self.play_end = now + self.buffer_s
        self.play_end += samples / self.rate
        return ran_dry


class Bot:
    """One simulated Meeting BaaS bot: its next chunk sent when its phase group is ticked,
    each echo timed as it is parsed (see benchmarks/wsclient.py)."""

    def __init__(
        self, frames: list[bytes], first: int, chunk: int, rate: int, sends: int = 64
    ) -> None:
        """sends: how many chunks the step will send, so its series never grow (Series)."""
        self.frames, self.first, self.chunk, self.rate = frames, first, chunk, rate
        self.client: BotClient | None = None
        self.sent_at = Series(sends)
        self.due_at = Series(sends)  # when each chunk should have gone: the generator may be late
        echoes = sends * max(1, round(chunk / rate / ECHO_FRAME_S))  # at most a message a frame
        self.stats = BotStats(Series(echoes), leads=Series(echoes))
        self.player = DeviceBufferPlayer(rate)
        self.measuring = False
        self.measured_from = 0  # index of the first chunk sent while measuring

    def send_next(self, due: float) -> None:
        """Write the next pre-encoded chunk of the loop (this bot starts at chunk `first`)."""
        k = len(self.sent_at)
        self.sent_at.append(time.monotonic())
        self.due_at.append(due)
        self.client.write(self.frames[(self.first + k) % len(self.frames)])  # type: ignore[union-attr]

    def on_binary(self, buffer: bytes | bytearray, start: int, stop: int) -> None:
        """An echo frame parsed off the socket (its bytes are not needed, only its length)."""
        now, samples, stats = time.monotonic(), (stop - start) >> 1, self.stats
        stats.received += samples
        if self.measuring and (chunk_index := (stats.received - 1) // self.chunk) < len(
            self.sent_at
        ):
            round_trip = now - self.sent_at[chunk_index]
            stats.rtts.append(round_trip)
            # the player hears the echo as if its chunk had left on time: a late generator
            # tick is the harness's delay, not the bridge's (it is reported on its own)
            now = self.due_at[chunk_index] + round_trip
        ran_dry = self.player.play(now, samples)
        if self.measuring:  # the player runs from the first echo; gaps count once measuring
            stats.underruns += ran_dry
            stats.leads.append(self.player.play_end - now)

    def lateness(self) -> np.ndarray:
        """Seconds each chunk left after it was due."""
        return self.sent_at.values() - self.due_at.values()


class Metronome:
    """The bots' clock: one timer callback sends a whole phase group its next chunk (no task
    or await per bot), catching up on every group whose time has come if the loop was late."""

    def __init__(self, groups: list[list[Bot]], begin: float, period_s: float) -> None:
        self.groups, self.begin, self.period_s = groups, begin, period_s
        self.tick_s = period_s / len(groups)
        self.ticks = 0
        self.late = 0  # group sends a whole period late, once measuring
        self.longest_s = 0.0  # the longest callback, once measuring: the sends' own cost
        self.measuring = False
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._schedule()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _schedule(self) -> None:
        delay = self.begin + self.ticks * self.tick_s - time.monotonic()
        self._timer = asyncio.get_running_loop().call_later(max(delay, 0.0), self._tick)

    def _tick(self) -> None:
        now = began = time.monotonic()
        # uvloop's timers have 1 ms resolution and fire up to a millisecond early: a group
        # due within it goes now (early by less than the bots' own jitter), not after a spin
        while (due := self.begin + self.ticks * self.tick_s) <= now + TIMER_SLACK_S:
            if now - due > self.period_s:
                self.late += self.measuring
            for bot in self.groups[self.ticks % len(self.groups)]:
                bot.send_next(due)
            self.ticks += 1
            now = time.monotonic()
        if self.measuring:
            self.longest_s = max(self.longest_s, now - began)
        self._schedule()


def loop_chunks(audio: np.ndarray, chunk: int) -> list[bytes]:
    """The looped speech cut into whole chunks of `chunk` samples, as s16le bytes."""
    return [audio[i : i + chunk].tobytes() for i in range(0, len(audio) - chunk + 1, chunk)]


def encode_chunks(chunks: list[bytes], mask_keys: list[bytes]) -> list[list[bytes]]:
    """Every chunk as a masked binary frame, once per mask key: [key][chunk]."""
    return [[encode_frame(OP_BINARY, c, key) for c in chunks] for key in mask_keys]


async def open_bots(
    server: ServerUnderTest, bots: list[Bot], profile: BotProfile, rate: int, name: str
) -> None:
    """Connect every bot (CONNECTS_AT_ONCE at a time) and send its hello and roster."""
    query = "" if profile.announces_rate else f"?rate={rate}"
    gate = asyncio.Semaphore(CONNECTS_AT_ONCE)

    async def open_one(i: int, bot: Bot) -> None:
        session = f"{name}-{i}"
        async with gate:
            bot.client = await connect(
                "127.0.0.1",
                server.port_for(session),
                f"/bots/{session}{query}",
                MASK_KEYS[i % len(MASK_KEYS)],
                bot.on_binary,
            )
        bot.client.send_text(json.dumps(profile.hello(f"bot-{i}", rate)))
        bot.client.send_text(json.dumps(profile.roster({f"Speaker {i}": True}, time.time())))

    await asyncio.gather(*(open_one(i, bot) for i, bot in enumerate(bots)))


def speech(rate: int) -> np.ndarray:
    """The six alsa recordings with short pauses, looped by the bots."""
    parts = []
    for name in SPEECH:
        samples, _ = read_wav(Path("/usr/share/sounds/alsa") / f"{name}.wav", rate)
        parts += [samples, np.zeros(rate // 2, dtype=np.int16)]
    return np.concatenate(parts)


class ServerUnderTest:
    """A server in its own process, pinned to one core: speakbridge (or several of its
    workers, unpinned, measured together), the pipecat peer, or a floor echo."""

    def __init__(
        self,
        kind: str,
        extra: list[str],
        rate: int,
        core: int | None,
        workers: int = 1,
        log: str | None = None,
    ) -> None:
        self.kind, self.workers = kind, workers
        base = free_ports(workers) if workers > 1 else 0
        if kind == "speakbridge":
            command = serve_command(
                base,
                workers,
                "--log-level",
                "warning",
                "--max-sessions",
                "10000",
                "--responder",
                "echo",
                "-o",
                "mode=live",
                *extra,
            )
        elif kind == "pipecat":
            command = [
                sys.executable,
                "-m",
                "benchmarks.peer_pipecat",
                "--port",
                str(free_port()),
                "--rate",
                str(rate),
            ]
        else:  # floor-LIBRARY
            library = kind.removeprefix("floor-")
            command = [sys.executable, "-m", "benchmarks.floor", "--library", library]
            command += ["--port", str(free_port())]
        with open(log or os.devnull, "a") as stderr:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=stderr, text=True
            )
        banner = self.process.stdout.readline()  # type: ignore[union-attr]
        if workers == 1:
            if (port := re.search(r":(\d+)", banner)) is None:
                where = f"its stderr is in {log}" if log else "--server-log FILE keeps its stderr"
                raise SystemExit(
                    f"the {kind} server did not start (exit code {self.process.wait()}): {where}"
                )
            base = int(port.group(1))
        self.port = base
        self.ports = [base + i for i in range(workers)]
        self.core = core
        if core is not None:
            os.sched_setaffinity(self.process.pid, {core})
        for port in self.ports:
            wait_until_listening(port)

    def port_for(self, session_id: str) -> int:
        """The port of a worker for session_id: a stable hash spreads sessions over the
        worker ports, as a load balancer in front of them would."""
        return self.ports[zlib.crc32(session_id.encode()) % self.workers]

    def pids(self) -> list[int]:
        """The server's process and its workers."""
        return [self.process.pid, *children(self.process.pid)]

    @property
    def has_metrics(self) -> bool:
        return self.kind == "speakbridge"

    def cpu_seconds(self) -> float:
        ticks = 0
        for pid in self.pids():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def steal_seconds(self) -> float:
        """The host's steal on the server's core (all cores when not pinned)."""
        return steal_seconds(self.core)

    def rss_kb(self) -> int:
        return sum(rss_kb(pid) for pid in self.pids())

    def stop(self) -> None:
        """SIGTERM; a server that has not exited in 30 s (a swamped loop) is killed, said."""
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            print(f"{self.kind} did not exit 30 s after SIGTERM: killed", flush=True)
            self.process.kill()
            self.process.wait()


def serve_command(port: int, workers: int, *extra: str) -> list[str]:
    """`speakbridge serve` on port (worker i on port + i), sessions ending with their socket."""
    serve = [sys.executable, "-m", "bridge", "serve", "--port", str(port)]
    serve += ["--admit-max-core-share", "0"]  # measure the core past the guard, not the guard
    return [*serve, "--workers", str(workers), "--grace-s", "0", *extra]


def rss_kb(pid: int | str) -> int:
    """Resident memory of a process ("self": this one), in KB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]


def children(pid: int) -> list[int]:
    """The processes pid started (a supervisor's workers)."""
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def steal_seconds(core: int | None) -> float:
    """Time the hypervisor ran something else while this core wanted to run (on a VM); all
    cores for None. Whatever runs there can do nothing about it: it stalls."""
    line = "cpu" if core is None else f"cpu{core}"
    for row in Path("/proc/stat").read_text().splitlines():
        fields = row.split()
        if fields[0] == line:
            return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    return 0.0


def busy_seconds(core: int | None) -> float:
    """Time this core (all cores for None) ran anything: user, nice, system, irq, softirq."""
    line = "cpu" if core is None else f"cpu{core}"
    for row in Path("/proc/stat").read_text().splitlines():
        fields = row.split()
        if fields[0] == line:
            return sum(int(fields[i]) for i in (1, 2, 3, 6, 7)) / os.sysconf("SC_CLK_TCK")
    return 0.0


async def sleep_until(when: float) -> None:
    """Sleep until time.monotonic() reaches when (at once if it has)."""
    await asyncio.sleep(max(0.0, when - time.monotonic()))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(n: int) -> int:
    """A base port with the n ports from it free (workers listen on base + i)."""
    while True:
        base = free_port()
        with contextlib.ExitStack() as probes:
            try:
                for i in range(1, n):
                    probes.enter_context(socket.socket()).bind(("127.0.0.1", base + i))
            except OSError:
                continue
        return base


def wait_until_listening(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


async def scrape(http: httpx.AsyncClient, ports: list[int]) -> Scrape:
    """The server's metrics, summed over its workers; parsed in a thread, as a parse of tens
    of ms would hold up bots."""
    values, histograms = empty_scrape()
    for port in ports:
        page = (await http.get(f"http://127.0.0.1:{port}/metrics", timeout=10)).text
        more, more_histograms = await asyncio.to_thread(parse_metrics, page)
        for name, value in more.items():
            values[name] = values.get(name, 0.0) + value
        for name, histogram in histograms.items():
            histogram.merge(more_histograms[name])
    return values, histograms


def empty_scrape() -> Scrape:
    return {}, {name: Histogram(bounds) for name, bounds in HISTOGRAMS.items()}


def parse_metrics(page: str) -> Scrape:
    values, histograms = empty_scrape()
    buckets: dict[str, list[tuple[float, float]]] = {name: [] for name in HISTOGRAMS}
    for family in text_string_to_metric_families(page):
        for s in family.samples:
            family_name = s.name.removesuffix("_bucket")
            if family_name != s.name and family_name in HISTOGRAMS:
                buckets[family_name].append((float(s.labels["le"]), s.value))
            elif not s.labels:
                values[s.name] = s.value
            else:
                values[s.name] = values.get(s.name, 0.0) + s.value
    for name, histogram in histograms.items():
        previous = 0.0
        for i, (_, cumulative) in enumerate(sorted(buckets[name])):
            histogram.counts[i] = int(cumulative - previous)
            previous = cumulative
        histogram.count = int(previous)
    return values, histograms


def stalls(histogram: Histogram, longer_than_s: float = STALL_S) -> int:
    """Observations of a loop-lag histogram above longer_than_s (one of its bounds)."""
    return sum(histogram.counts[histogram.bounds.index(longer_than_s) + 1 :])


class LoopStalls:
    """The generator's own event-loop stalls, worst per window: a stalled generator hears
    echoes late, and its player model then counts underruns the bridge did not cause."""

    def __init__(self, period_s: float = 0.005) -> None:
        self.worst = 0.0
        self._task = asyncio.create_task(self._tick(period_s))

    async def _tick(self, period_s: float) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(period_s)
            self.worst = max(self.worst, time.monotonic() - before - period_s)

    def take(self) -> float:
        """The worst stall since the last take, in seconds."""
        worst, self.worst = self.worst, 0.0
        return worst

    def stop(self) -> None:
        self._task.cancel()


def difference(after: Histogram, before: Histogram) -> Histogram:
    out = Histogram(after.bounds)
    out.counts = [a - b for a, b in zip(after.counts, before.counts, strict=True)]
    out.count = after.count - before.count
    return out


async def run_step(server: ServerUnderTest, n: int, args: argparse.Namespace) -> dict:
    rate, profile = args.rate, PROFILES[args.bot]
    chunk = profile.samples_per_message(rate, args.chunk_ms)
    chunks = loop_chunks(speech(rate), chunk)
    frames = encode_chunks(chunks, MASK_KEYS)  # before the clock starts: sends only write
    sends = math.ceil((args.warmup + args.duration + 1.0) * rate / chunk) + 16
    bots = [
        Bot(frames[i % len(MASK_KEYS)], (i * 7919) % len(chunks), chunk, rate, sends)
        for i in range(n)
    ]
    await open_bots(server, bots, profile, rate, f"load-{n}")
    gc.collect()
    gc.freeze()  # the bots' objects live all step: a full collection need not walk them
    http = httpx.AsyncClient()  # made before the clock starts: its setup takes milliseconds
    await http.get(f"http://127.0.0.1:{server.port}/healthz")
    period = chunk / rate  # one message of audio, as this generation frames it
    # bots are spread over the chunk period, a group a millisecond, as real bots are not in
    # step: ten groups made every tenth of the bots a burst, a queue no meeting makes
    phases = max(1, round(period / PHASE_S))
    groups = [bots[g::phases] for g in range(phases)]
    begin = time.monotonic() + 0.05
    warmup_end = begin + args.warmup
    end = warmup_end + args.duration
    metronome = Metronome(groups, begin, period)
    metronome.start()
    rss_samples: list[float] = []
    every_10s: dict[str, list[float]] = {
        "underruns": [],
        "host_steal_ms": [],
        "generator_steal_ms": [],  # a stalled generator hears echoes late: harness underruns
        "late_ticks": [],
        "server_stalls": [],  # the server's event loop late by more than STALL_S
        "dropped": [],  # frames the server shed: the player hears a gap (an underrun) too
    }
    generator_core = GENERATOR_CORE if args.pin else None
    generator_stalls = LoopStalls()
    generator_worst_ms: list[float] = []
    await sleep_until(warmup_end)
    metronome.measuring = True
    for bot in bots:
        bot.measuring, bot.measured_from = True, len(bot.sent_at)
    # in the background: the bots' ticks go on meanwhile
    baseline = asyncio.create_task(scrape(http, server.ports)) if server.has_metrics else None
    cpu0, wall0, rss0 = server.cpu_seconds(), time.monotonic(), server.rss_kb()
    generator_cpu0, generator_kernel0 = time.process_time(), os.times().system
    steal0, generator_steal0 = server.steal_seconds(), steal_seconds(generator_core)
    busy0, generator_busy0 = busy_seconds(server.core), busy_seconds(generator_core)
    window_scrapes: list[asyncio.Task[Scrape]] = []  # the server's stalls and drops, per window
    next_sample = warmup_end
    while next_sample < end:
        rss_samples.append(round(server.rss_kb() / 1024, 1))
        every_10s["underruns"].append(sum(b.stats.underruns for b in bots))
        every_10s["host_steal_ms"].append(round((server.steal_seconds() - steal0) * 1000))
        generator_steal = steal_seconds(generator_core) - generator_steal0
        every_10s["generator_steal_ms"].append(round(generator_steal * 1000))
        every_10s["late_ticks"].append(metronome.late)
        generator_worst_ms.append(round(generator_stalls.take() * 1000, 1))
        if server.has_metrics:
            window_scrapes.append(asyncio.create_task(scrape(http, server.ports)))
        next_sample += 10.0
        await sleep_until(min(next_sample, end))
    metronome.stop()
    late = metronome.late
    generator_stalls.stop()
    await asyncio.sleep(0.2)
    wall = time.monotonic() - wall0
    cpu = server.cpu_seconds() - cpu0
    generator_cpu = time.process_time() - generator_cpu0
    generator_kernel = os.times().system - generator_kernel0
    steal = server.steal_seconds() - steal0
    generator_steal = steal_seconds(generator_core) - generator_steal0
    others = busy_seconds(server.core) - busy0 - cpu  # what else ran on the server's core
    generator_others = busy_seconds(generator_core) - generator_busy0 - generator_cpu
    metrics, histograms = await scrape(http, server.ports) if server.has_metrics else empty_scrape()
    metrics0, histograms0 = await baseline if baseline is not None else empty_scrape()
    lag0 = stalls(histograms0[LOOP_LAG])
    for window in window_scrapes:
        values, window_histograms = await window
        every_10s["server_stalls"].append(stalls(window_histograms[LOOP_LAG]) - lag0)
        every_10s["dropped"].append(values.get(DROPPED, 0) - metrics0.get(DROPPED, 0))
    added, loop_lag = (difference(histograms[h], histograms0[h]) for h in HISTOGRAMS)
    rss = server.rss_kb()
    await http.aclose()
    lost = sum(bot.client.closed.done() for bot in bots)  # type: ignore[union-attr]
    unsent = sum(bot.client.unsent for bot in bots)  # type: ignore[union-attr]
    await asyncio.gather(*(bot.client.close() for bot in bots))  # type: ignore[union-attr]
    gc.unfreeze()
    rtts = np.concatenate([b.stats.rtts.values() for b in bots]) * 1000
    leads = np.concatenate([b.stats.leads.values() for b in bots]) * 1000
    sends_late = np.concatenate([b.lateness()[b.measured_from :] for b in bots]) * 1000
    underruns = sum(b.stats.underruns for b in bots)
    server_underruns = metrics.get("speakbridge_underruns_total", 0) - metrics0.get(
        "speakbridge_underruns_total", 0
    )
    dropped = metrics.get(DROPPED, 0) - metrics0.get(DROPPED, 0)
    p99 = added.quantile(0.99)
    result = {
        "sessions": n,
        "added_latency_ms": {
            q: round((added.quantile(v) or 0) * 1000, 3)
            for q, v in (("p50", 0.5), ("p99", 0.99), ("max_bucket", 1.0))
        }
        if server.has_metrics
        else None,
        "event_loop_lag_ms": {  # the watchdog's tick lateness: stalls of the whole server
            q: round((loop_lag.quantile(v) or 0) * 1000, 1)
            for q, v in (("p99", 0.99), ("max_bucket", 1.0))
        }
        if server.has_metrics
        else None,
        "round_trip_ms": {
            "p50": round(float(np.percentile(rtts, 50)), 2),
            "p99": round(float(np.percentile(rtts, 99)), 2),
            "max": round(float(rtts.max()), 2),
        }
        if len(rtts) and not dropped  # a dropped frame breaks the bots' sample-to-send mapping
        else None,
        "player_lead_ms": {
            "p50": round(float(np.percentile(leads, 50)), 1),
            "max": round(float(leads.max()), 1),
        }
        if len(leads)
        else None,
        "underruns": underruns,
        "server_underruns": int(server_underruns),
        "dropped": int(dropped),
        "late_ticks": late,
        "connections_lost": lost,  # before the end of the step: the server or the bot cut them
        "chunks_unsent": unsent,  # written after a connection was lost
        "generator_late_ms": {  # how late bots sent their chunks (taken out of the player model)
            "p99": round(float(np.percentile(sends_late, 99)), 2),
            "max": round(float(sends_late.max()), 2),
        },
        "server_cpu_core_share": round(cpu / wall, 3),
        "generator_longest_tick_ms": round(metronome.longest_s * 1000, 2),
        "generator_cpu_core_share": round(generator_cpu / wall, 3),  # near 1: the harness limits
        "generator_kernel_share": round(generator_kernel / wall, 3),  # of it, in syscalls (TCP)
        "host_steal_share": round(steal / wall, 4),  # of the server's core, taken by the host
        "generator_steal_share": round(generator_steal / wall, 4),  # of the generator's core
        # other processes on the same cores (a shared machine): they compete with both
        "others_on_server_core_share": round(max(others, 0.0) / wall, 3)
        if server.core is not None
        else None,
        "others_on_generator_core_share": round(max(generator_others, 0.0) / wall, 3)
        if generator_core is not None
        else None,
        "server_rss_mb": round(rss / 1024, 1),
        "rss_growth_kb_during_step": rss - rss0,
        "frames_measured": added.count,
    }
    result["rss_mb_every_10s"] = rss_samples
    result["generator_worst_stall_ms_every_10s"] = generator_worst_ms
    for name, totals in every_10s.items():  # so far -> in each 10 s: see when they come
        result[f"{name}_every_10s"] = np.diff(totals, prepend=0).tolist()
    result["generator_kept_time"] = bool(late == 0 and generator_cpu / wall < SUSTAINED_CPU_SHARE)
    result["sustained"] = bool(
        underruns == 0
        and dropped == 0
        and late == 0
        and lost == 0
        and cpu / wall < SUSTAINED_CPU_SHARE * server.workers
    )
    result["passed"] = bool(result["sustained"] and p99 is not None and p99 < P99_LIMIT_S)
    return result


def cpuinfo() -> dict[str, str]:
    """The first processor's fields in /proc/cpuinfo (empty where there is none)."""
    path = Path("/proc/cpuinfo")
    fields: dict[str, str] = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        if not line.strip():
            break
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def machine() -> dict:
    """The machine a run measured. VMs of one CPU name can differ twofold per core (the
    host's part behind them): the family, model, stepping and cache tell them apart."""
    info = cpuinfo()
    return {
        "host": socket.gethostname(),
        "cpu": info.get("model name", platform.processor()),
        "cpu_id": "-".join(info.get(k, "?") for k in ("cpu family", "model", "stepping")),
        "cache": info.get("cache size", "?"),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


async def measured_step(
    server: ServerUnderTest, kind: str, n: int, base_rss: int, args: argparse.Namespace
) -> dict:
    """One step of n sessions, with its per-session figures; printed as it ends."""
    step = await run_step(server, n, args)
    step["server"] = kind
    step["rss_per_session_kb"] = round((step["server_rss_mb"] * 1024 - base_rss) / n, 1)
    step["cpu_per_session_pct"] = round(100 * step["server_cpu_core_share"] / n, 3)
    print(json.dumps(step), flush=True)
    await asyncio.sleep(1.0)  # sessions end (grace 0)
    return step


def stolen_ms(step: dict, duration_s: float) -> int:
    """The most the host took of the server's core or of the generator's in one 10 s window
    of a step (the part after the last window counts as one), in ms."""
    worst = 0
    for core in ("host", "generator"):
        windows = step[f"{core}_steal_ms_every_10s"]
        tail = round(step[f"{core}_steal_share"] * duration_s * 1000) - sum(windows)
        worst = max(worst, tail, *windows)
    return worst


def disturbance(step: dict, args: argparse.Namespace) -> str | None:
    """Why a step says little about the server, if it does: the host stole
    `--retry-steal-ms` of a core, or the generator fell late with time to spare."""
    if args.retry_steal_ms <= 0:
        return None
    stolen = stolen_ms(step, args.duration)
    if stolen >= args.retry_steal_ms:
        return f"the host stole {stolen} ms of a core"
    if step["late_ticks"] and step["generator_cpu_core_share"] < SUSTAINED_CPU_SHARE:
        return f"the generator fell late {step['late_ticks']} times below its CPU bound"
    return None


async def ramp(kind: str, args: argparse.Namespace) -> dict:
    """Run the ramp against one server kind; returns its steps and capacities."""
    workers = args.workers if kind == "speakbridge" else 1
    core = 0 if args.pin and workers == 1 else None
    extra = ["--prebuffer-ms", str(args.prebuffer_ms), *args.server_arg]
    server = ServerUnderTest(kind, extra, args.rate, core, workers, args.server_log)
    base_rss = server.rss_kb()
    steps = []
    try:
        for n in args.ramp:
            try:
                step = await measured_step(server, kind, n, base_rss, args)
            except httpx.HTTPError as exc:  # a scrape unanswered: the server is swamped
                steps.append(unresponsive(kind, n, exc))
                break
            why = disturbance(step, args)
            if not step["sustained"] and why:
                print(f"{kind} at {n}: {why}; once more", flush=True)
                first, step = step, await measured_step(server, kind, n, base_rss, args)
                step["disturbed_attempt"] = first
            steps.append(step)
            if not step["sustained"] and args.stop_on_fail:
                break
    finally:
        server.stop()
    return {
        "prebuffer_ms": args.prebuffer_ms,
        "steps": steps,
        "max_passing_sessions": max([s["sessions"] for s in steps if s["passed"]], default=0),
        "max_sustained_sessions": max([s["sessions"] for s in steps if s["sustained"]], default=0),
    }


def unresponsive(kind: str, n: int, exc: Exception) -> dict:
    """A step the server did not answer its scrape in: failed, with why (no figures)."""
    step = {"sessions": n, "server": kind, "sustained": False, "passed": False}
    step["failure"] = f"the server did not answer /metrics: {type(exc).__name__}"
    print(json.dumps(step), flush=True)
    return step


async def main_async(args: argparse.Namespace) -> dict:
    if args.pin:
        os.sched_setaffinity(0, {GENERATOR_CORE})
    servers = {} if args.skip_speakbridge else {"speakbridge": await ramp("speakbridge", args)}
    if args.compare:
        servers["pipecat"] = await ramp("pipecat", args)
    for library in args.floor:
        servers[f"floor-{library}"] = await ramp(f"floor-{library}", args)
    result = {
        "benchmark": "load",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "rate": args.rate,
        "chunk_ms": args.chunk_ms,
        "bot": args.bot,
        "duration_s": args.duration,
        "responder": "echo, frame by frame (speakbridge: echo -o mode=live)",
        "prebuffer_ms": args.prebuffer_ms,
        "server_args": args.server_arg,
        "server_pinned_to_one_core": args.pin,
        "criteria": {
            "sustained": "no player underruns, nothing dropped, no late generator ticks, no "
            "connection lost, server CPU under 90% of its core",
            "generator_kept_time": "no late generator tick, generator CPU under 90% of its core",
            "passed": "sustained and p99 added latency < 5 ms (server timestamps)",
        },
        "servers": servers,
        "max_passing_sessions": servers.get("speakbridge", {}).get("max_passing_sessions"),
    }
    if args.compare and "speakbridge" in servers:
        result["cpu_per_session_ratio_pipecat_to_speakbridge"] = cpu_ratio(servers)
    return result


def cpu_ratio(servers: dict) -> float | None:
    """Mean over common steps (neither server saturated) of pipecat's CPU per session over ours."""
    ours = {
        s["sessions"]: s["cpu_per_session_pct"]
        for s in servers["speakbridge"]["steps"]
        if s["server_cpu_core_share"] < SUSTAINED_CPU_SHARE
    }
    ratios = [
        s["cpu_per_session_pct"] / ours[s["sessions"]]
        for s in servers["pipecat"]["steps"]
        if s["sessions"] in ours and s["server_cpu_core_share"] < SUSTAINED_CPU_SHARE
    ]
    return round(float(np.mean(ratios)), 2) if ratios else None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--ramp", type=lambda s: [int(x) for x in s.split(",")], default=[25, 50, 100, 200]
    )
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds a step")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--rate", type=int, default=24000, choices=list(SUPPORTED_RATES))
    parser.add_argument(
        "--bot",
        default="custom",
        choices=list(PROFILES),
        help="bot generation to model: gen1 512 B, gen3 10 ms, v2 100 ms messages (custom: "
        "--chunk-ms)",
    )
    parser.add_argument("--chunk-ms", type=int, default=20)
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="do not pin the server to core 0 and the generator to core 1",
    )
    parser.add_argument(
        "--stop-on-fail", action="store_true", help="end a ramp at its first unsustainable step"
    )
    parser.add_argument(
        "--retry-steal-ms",
        type=float,
        default=100.0,
        help="run a failed step once more if the host stole this much of the server's or the "
        "generator's core in one 10 s window of it, or the generator fell late while under "
        "its CPU bound (the first attempt is kept as disturbed_attempt; 0: never, as a soak "
        "runs)",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="also run the pipecat peer (the `peer` extra), same generator",
    )
    parser.add_argument(
        "--floor",
        action="append",
        default=[],
        choices=LIBRARIES,
        help="also run the plainest echo on this WebSocket library (benchmarks/floor.py; repeat)",
    )
    parser.add_argument(
        "--prebuffer-ms",
        type=float,
        default=0.0,
        help="the server's prebuffer: 0 (one frame) times the bridge's own latency; its "
        "default, 40, gives the echo a frame of margin for jitter (the soak runs so)",
    )
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="an extra argument for `speakbridge serve` (repeat)",
    )
    parser.add_argument(
        "--server-log",
        metavar="FILE",
        help="append the servers' stderr to FILE (the watchdog names what blocked the loop)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="run speakbridge with --workers N (not pinned; CPU and RSS summed over them)",
    )
    parser.add_argument(
        "--skip-speakbridge",
        action="store_true",
        help="ramp only the --floor servers (and --compare): the generator's own limit",
    )
    parser.add_argument("--out", type=Path)
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    result = loops.run(main_async(args))  # uvloop, as the server: the bots' own stalls are less
    print(f"largest passing N: {result['max_passing_sessions']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
