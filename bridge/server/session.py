"""One bot's session: its sockets and their roles, the input pipeline, the responder, playout.

A session is created by its first socket and outlives any one socket by a grace period,
so the bot's reconnects keep the same pipeline, responder and queued speech.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from websockets.protocol import State

from bridge.audio.echo_guard import EchoGuard
from bridge.audio.pipeline import InputPipeline
from bridge.audio.playback import PlaybackReport
from bridge.audio.vad import VoiceActivityDetector
from bridge.config import BridgeConfig
from bridge.responder import Responder, SessionHandle, SessionInfo
from bridge.server.events import Event, EventHub
from bridge.server.floor import Floor, floor_settings
from bridge.server.histogram import LATENCY_BUCKETS_S, Histogram
from bridge.server.playout import Playout, Send
from bridge.server.runner import ResponderRunner
from bridge.wire.connection import BotConnection
from bridge.wire.protocol import CloseCode, Hello, PathRole, ProtocolError, parse_audio, parse_text

log = logging.getLogger(__name__)

ResponderFactory = Callable[[SessionHandle], Responder]
SINK_PREFERENCE: tuple[PathRole, ...] = ("input", "dual", "output")
ARRIVALS_KEPT = 256  # arrival times of recent bot messages, for loopback latency


@dataclass(eq=False)
class Link:
    """One socket of a session; `source` once it has sent the hello or audio."""

    connection: BotConnection
    path_role: PathRole
    source: bool = False


@dataclass
class SessionStats:
    """What a session counts; its summary line is built from these."""

    started: float = field(default_factory=time.monotonic)
    bytes_in: int = 0
    dropped: Counter[str] = field(default_factory=Counter)  # messages and frames, by reason
    sockets: int = 0
    barge_ins: int = 0


class Session:
    """Routes one bot's sockets through the pipeline to its responders and paces their speech."""

    def __init__(
        self,
        session_id: str,
        sample_rate: int,
        config: BridgeConfig,
        make_responders: list[ResponderFactory],
        on_end: Callable[[Session], None],
    ) -> None:
        self.id = session_id
        self.sample_rate = sample_rate
        self.config = config
        self.links: dict[PathRole, Link] = {}
        self.stats = SessionStats()
        self.ended = False
        self.end_reason: str | None = None
        self._on_end = on_end
        self._grace: asyncio.TimerHandle | None = None
        self._ending: asyncio.Task[None] | None = None
        self._sink_ready = asyncio.Event()
        self._send: Send | None = None  # the current sink's send, chosen by _update_sink
        self.info = SessionInfo(session_id, sample_rate)
        self.events = EventHub(session_id, config.event_queue_size)
        self.playout = Playout(
            sample_rate,
            config.frame_ms,
            config.lead_ms,
            config.playback_buffer_s,
            config.max_pending_utterances,
            config.prebuffer_ms,
            config.prefetch_s,
            config.resample_quality,
        )
        self.playout.on_finished = self._utterance_finished
        self.runners = [self._start_responder(make) for make in make_responders]
        vad = VoiceActivityDetector(
            config.frame_ms,
            config.vad_aggressiveness,
            config.vad_start_ms,
            config.turn_vad_stop_ms if config.turn_policy == "adaptive" else config.vad_stop_ms,
            config.vad_max_flatness,
            config.vad_onset_ms,
        )
        self.echo_guard = (
            EchoGuard(config.frame_ms, config.echo_min_delay_ms, config.echo_max_delay_ms)
            if config.echo_guard
            else None
        )
        self.pipeline = InputPipeline(
            sample_rate,
            {r.responder.sample_rate or sample_rate for r in self.runners},
            config.frame_ms,
            vad,
            config.input_buffer_ms,
            config.resample_quality,
            self.echo_guard,
        )
        self.floor = Floor(
            floor_settings(config, [r.responder for r in self.runners]),
            vad,
            self.playout,
            self.info,
            self._offer_all,
            self.events.publish,
            self.interrupt,
        )
        self._hears_bot = [r for r in self.runners if r.responder.hears_bot]
        if self._hears_bot or self.echo_guard:  # else no call a frame sent
            self.playout.on_sent = self._sent
        self.added_latency = Histogram(LATENCY_BUCKETS_S)
        self._loopback = any(r.responder.loopback for r in self.runners)
        self._arrivals: deque[tuple[int, float]] = deque(maxlen=ARRIVALS_KEPT)
        self._unwritten: deque[float] = deque(maxlen=ARRIVALS_KEPT)  # their frames' reads
        self._loopback_dropped = 0  # input samples a loopback dropped: output j is input j + this
        self.events.listen(self._tell_responders)
        self._playout_task = asyncio.create_task(
            self.playout.run(self._sink, self._sink_ready), name=f"playout-{session_id}"
        )

    def _start_responder(self, make: ResponderFactory) -> ResponderRunner:
        handle = SessionHandle(self.info, self.playout, self.events, self._responder_dropped)
        responder = make(handle)
        handle.owner = responder
        return ResponderRunner(responder, self.config.responder_queue_frames, self.id)

    # sockets

    def attach(self, link: Link) -> Link | None:
        """Add a socket; returns the older socket on the same URL that it replaces, if any."""
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        replaced = self.links.get(link.path_role)
        self.links[link.path_role] = link
        self.stats.sockets += 1
        self._update_sink()
        log.info(
            "session %s: %s socket connected (%d open)", self.id, link.path_role, len(self.links)
        )
        return replaced

    def detach(self, link: Link) -> None:
        """Forget a closed socket; with none left, the grace period starts."""
        if self.links.get(link.path_role) is not link:
            return  # already replaced by a newer socket
        del self.links[link.path_role]
        self._update_sink()
        log.info("session %s: %s socket closed (%d open)", self.id, link.path_role, len(self.links))
        if not self.links and not self.ended:
            self._grace = asyncio.get_running_loop().call_later(self.config.grace_s, self._expire)

    def _expire(self) -> None:
        self.request_end("grace period over")

    # messages

    async def receive_text(self, link: Link, text: str) -> None:
        """Handle a text frame: the hello or speaker states; anything else is counted, ignored."""
        try:
            message = parse_text(text)
        except ProtocolError as exc:
            self._refuse(exc)
            return
        if isinstance(message, Hello):
            if not await self._claim_source(link):
                return
            self.info.bot_id = message.bot_id
            log.info(
                "session %s: bot %s says hello (protocol %d)",
                self.id,
                message.bot_id,
                message.protocol_version,
            )
            self.events.publish("hello", bot_id=message.bot_id)
        else:
            for speaker in message.speakers:
                self.info.speakers[speaker.id] = speaker
            for runner in self.runners:
                runner.offer("speakers", message.speakers)
            self.events.publish(
                "speakers",
                at_ms=self.position_ms(),
                speakers=[s.model_dump(by_alias=True) for s in message.speakers],
            )

    async def receive_audio(self, link: Link, data: bytes) -> None:
        """Handle a binary frame of meeting audio; the first makes its socket the source."""
        if link.source:
            self.receive_source_audio(data, time.monotonic())
            return
        try:
            parse_audio(data)
        except ProtocolError as exc:
            self._refuse(exc)  # bad audio claims nothing
            return
        if await self._claim_source(link):
            self.receive_source_audio(data, time.monotonic())

    def receive_source_audio(self, data: bytes, read_at: float) -> None:
        """Handle a binary frame from the source socket, read at monotonic time read_at;
        synchronous, so the socket can hand it over inline (bridge.wire.connection)."""
        try:
            samples = parse_audio(data)
        except ProtocolError as exc:
            self._refuse(exc)
            return
        self.stats.bytes_in += len(data)
        if self._loopback:  # before hearing it: its echo may leave within _hear
            self._arrivals.append((self.pipeline.samples_in + len(samples), read_at))
        self._hear(samples)

    def position_ms(self) -> float:
        """Milliseconds of meeting audio heard so far: the session's timeline."""
        return self.pipeline.samples_in * 1000 / self.sample_rate

    def _hear(self, samples: np.ndarray) -> None:
        for item in self.pipeline.feed(samples):
            if isinstance(item, tuple):
                rate, frame = item
                for runner in self.runners:
                    if (runner.responder.sample_rate or self.sample_rate) == rate:
                        runner.offer("audio", frame.copy())
            else:
                self.floor.hear(item)  # speech events: turns, pauses, barge-in
        self.floor.tick()

    def interrupt(self, reason: str) -> None:
        """Stop the bot speaking (barge-in or a command); responders hear what was cut."""
        if not self.playout.speaking:
            return
        reports = self.playout.interrupt()
        self.stats.barge_ins += reason == "barge-in"
        ms = 1000 / self.sample_rate
        dropped_ms = sum(r.dropped for r in reports) * ms
        log.info("session %s: %s, %.0f ms of queued speech dropped", self.id, reason, dropped_ms)
        self.events.publish(
            "interrupted",
            reason=reason,
            at_ms=self.position_ms(),
            heard=[
                {"utterance": r.utterance_id, "sent_ms": r.sent * ms, "dropped_ms": r.dropped * ms}
                for r in reports
            ],
        )
        for report in reports:
            self._offer_all("interrupted", report)

    def delegate(self, command_type: str, command: Event) -> bool:
        """Hand a control command to the responders that handle its type; False if none do."""
        handlers = [r for r in self.runners if command_type in r.responder.commands]
        for runner in handlers:
            runner.offer("command", command)
        return bool(handlers)

    def request_end(self, reason: str) -> None:
        """End the session soon, from code that must not wait for it (a command, a timer)."""
        if self._ending is None:
            self._ending = asyncio.create_task(self.end(reason))

    def _offer_all(self, hook: str, *args: object) -> None:
        for runner in self.runners:
            runner.offer(hook, *args)

    def _tell_responders(self, event: Event, source: object) -> None:
        for runner in self.runners:
            if runner.responder is not source:
                runner.offer("event", event)

    def _sent(self, frame: np.ndarray) -> None:
        if self.echo_guard is not None:  # when the bot plays it, on the input's timeline
            ahead_ms = (self.playout.pacer.play_end - time.monotonic()) * 1000
            frame_ms = len(frame) * 1000 / self.sample_rate
            self.echo_guard.played(frame, self.pipeline.vad.position_ms + ahead_ms - frame_ms)
        if self._hears_bot:
            self._bot_audio(frame)

    def _bot_audio(self, frame: np.ndarray) -> None:
        for runner in self._hears_bot:
            runner.offer("bot_audio", frame.copy(), self.pipeline.samples_in)

    def _note_arrival(self, samples: int) -> None:
        """A loopback's output sample j is input sample j: keep when the chunk holding the
        last sample of the frame just sent was read, until the frame is written."""
        # While a dropped stretch's backlog drains, its frames are timed against later
        # arrivals (at most the dropped length later); exact again once it has played.
        sent = self.playout.samples_out + samples + self._loopback_dropped
        arrivals = self._arrivals
        while arrivals and arrivals[0][0] < sent:
            arrivals.popleft()
        if arrivals:
            self._unwritten.append(arrivals[0][1])

    def _measure_latency(self) -> None:
        """Time each frame just written from the read of its chunk."""
        now = time.monotonic()
        for read_at in self._unwritten:
            self.added_latency.observe(now - read_at)
        self._unwritten.clear()

    def _utterance_finished(self, report: PlaybackReport) -> None:
        ms = 1000 / self.sample_rate
        self.events.publish(
            "utterance_end",
            utterance=report.utterance_id,
            at_ms=self.position_ms(),
            sent_ms=report.sent * ms,
            dropped_ms=report.dropped * ms,
            interrupted=report.interrupted,
        )

    async def _claim_source(self, link: Link) -> bool:
        """Make link (not yet the source) the meeting-audio source, unless another socket is."""
        if any(other.source for other in self.links.values() if other is not link):
            self._refuse(ProtocolError("second_source", f"{link.path_role} socket sent audio too"))
            await link.connection.close(CloseCode.SECOND_SOURCE, "another socket sends the audio")
            return False
        link.source = True
        self._update_sink()
        return True

    def _responder_dropped(self, reason: str, samples: int) -> None:
        self._count_drop(reason, "a responder dropped input audio")
        if self._loopback:
            self._loopback_dropped += samples

    def _refuse(self, exc: ProtocolError) -> None:
        self._count_drop(exc.reason, exc.detail)

    def _count_drop(self, reason: str, detail: str, count: int = 1) -> None:
        if not self.stats.dropped[reason]:
            log.warning(
                "session %s: %s: %s (further ones are counted, not logged)",
                self.id,
                reason,
                detail,
            )
        self.stats.dropped[reason] += count

    # playback

    def _sink_link(self) -> Link | None:
        listeners = {role: link for role, link in self.links.items() if not link.source}
        for role in SINK_PREFERENCE:
            if role in listeners:
                return listeners[role]
        return next(iter(self.links.values()), None)  # a lone socket is both ways

    def _update_sink(self) -> None:
        """Pick the socket speech goes to; called whenever the links change."""
        link = self._sink_link()
        self._send = None if link is None else self._sender(link)
        if link is None:
            self._sink_ready.clear()
        else:
            self._sink_ready.set()

    def _sink(self) -> Send | None:
        return self._send

    def _sender(self, link: Link) -> Send:
        """A synchronous frame writer (BotConnection.send_audio): no task, no drain (the
        backlog bound stands in for flow control)."""
        connection = link.connection
        protocol, transport = connection.protocol, connection.transport
        backlog_limit = self.config.playback_backlog_bytes
        connection.audio_lost = self._frames_lost
        if self._loopback:
            connection.audio_written = self._measure_latency

        def send(data: bytes) -> None:
            if protocol.state is not State.OPEN or transport.is_closing():
                self._frames_lost(1)
            elif transport.get_write_buffer_size() > backlog_limit:
                self._count_drop(
                    "playback_backlog",
                    "the bot is not reading its socket; frames of speech are dropped until it does",
                )
            else:
                connection.send_audio(data)
                if self._loopback:
                    self._note_arrival(len(data) // 2)

        return send

    def _frames_lost(self, frames: int) -> None:
        self._unwritten.clear()  # never written: no latency to time
        self._count_drop("playback_socket_closed", "a frame of speech was lost", frames)

    # lifecycle

    async def end(self, reason: str, code: int = CloseCode.SESSION_ENDED) -> None:
        """Close the sockets, stop the responder and log the session's summary line."""
        if self.ended:
            return
        self.ended = True
        if self._grace is not None:
            self._grace.cancel()
        for link in list(self.links.values()):
            await link.connection.close(code, reason)
        self._playout_task.cancel()
        self.end_reason = reason
        self.events.publish("session_end", reason=reason)  # the responders' last event
        timeout = self.config.responder_stop_timeout_s
        await asyncio.gather(*(r.stop(timeout) for r in self.runners))
        self._on_end(self)
        log.info("session %s ended (%s): %s", self.id, reason, self.summary())

    def summary(self) -> str:
        """One line: duration, audio in and out, speech, drops, underruns."""
        rate = self.sample_rate
        stats = self.stats
        out = self.playout.samples_out
        dropped = sum((r.dropped for r in self.runners), stats.dropped)
        if self.events.dropped:
            dropped["event"] = self.events.dropped
        return (
            f"{time.monotonic() - stats.started:.1f} s, bot {self.info.bot_id or '?'}, "
            f"{rate} Hz, audio in {stats.bytes_in / 2 / rate:.2f} s ({stats.bytes_in} B), "
            f"out {out / rate:.2f} s ({out * 2} B), "
            f"{self.pipeline.speech_segments + self.pipeline.vad.speaking} speech segments, "
            f"{self.floor.turns_started} turns ({self.floor.turns_continued} continued), "
            f"{stats.barge_ins} barge-ins, {self.floor.false_interruptions} resumed, "
            f"{self.playout.pacer.underruns} underruns, "
            f"dropped {dict(dropped) or 'none'}, "
            f"responder errors {sum(r.errors for r in self.runners)}, sockets {stats.sockets}"
        )
