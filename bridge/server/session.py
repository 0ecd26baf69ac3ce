"""One bot's session: its sockets and their roles, the input pipeline, the responder, playout.

A session is created by its first socket and outlives any one socket by a grace period,
so the bot's reconnects keep the same pipeline, responder and queued speech. Its rate is
the hello's `sample_rate` (the URL's or the default when the bot announces none): the
responders start once the bot has said hello or sent audio, when the rate is known. Its
phase goes connected -> in the call (the first meeting audio with signal, a roster, or a
webhook: gen3 connects in the waiting room, where nobody hears what is played) -> ended;
speech waits for the call.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from bridge.audio.echo_guard import EchoGuard
from bridge.audio.framer import frame_samples, frames_of
from bridge.audio.pipeline import InputPipeline
from bridge.audio.playback import PlaybackReport
from bridge.audio.vad import VoiceActivityDetector
from bridge.config import BridgeConfig
from bridge.logs import counted
from bridge.responder import Responder, SessionHandle, SessionInfo
from bridge.server._playout import LatencyProbe, SpeechSender
from bridge.server.events import Event, EventHub
from bridge.server.floor import Floor, floor_settings
from bridge.server.histogram import LATENCY_BUCKETS_S, Histogram
from bridge.server.playout import Playout, Send
from bridge.server.runner import ResponderRunner
from bridge.wire.connection import AudioSink, BotConnection
from bridge.wire.protocol import (
    BotEvent,
    CloseCode,
    Hello,
    PathRole,
    ProtocolError,
    SpeakerUpdate,
    TranscriptSegment,
    parse_audio,
    parse_text,
)
from bridge.wire.roster import Roster, RosterChange

log = logging.getLogger(__name__)

ResponderFactory = Callable[[SessionHandle], Responder]
SINK_PREFERENCE: tuple[PathRole, ...] = ("input", "dual", "output")
ARRIVALS_KEPT = 256  # arrival times of recent bot messages, for loopback latency
Phase = Literal["connected", "in_call", "ended"]
_PHASE_NOTE = {"connected": "never in the call", "in_call": "in the call", "ended": "ended"}


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
    input: InputPipeline | None = None  # the session's pipeline: it counts the bytes of audio in
    seconds_in_before: float = 0.0  # meeting audio heard at earlier rates (a re-hello's change)
    segments_before: int = 0
    rate_changes: int = 0
    dropped: Counter[str] = field(default_factory=Counter)  # messages and frames, by reason
    sockets: int = 0
    barge_ins: int = 0

    @property
    def bytes_in(self) -> int:
        """Bytes of meeting audio accepted (held ones included), at whatever rates."""
        return 0 if self.input is None else self.input.bytes_in


class Session:
    """Routes one bot's sockets through the pipeline to its responders and paces their speech."""

    def __init__(
        self,
        session_id: str,
        sample_rate: int,
        config: BridgeConfig,
        make_responders: list[ResponderFactory],
        on_end: Callable[[Session], None],
        on_started: Callable[[Session], None],
    ) -> None:
        self.id = session_id
        self.sample_rate = sample_rate  # the URL's or the default until the hello says otherwise
        self.config = config
        self.links: dict[PathRole, Link] = {}
        self.stats = SessionStats()
        self.phase: Phase = "connected"
        self.phase_reached: Phase = "connected"  # the furthest before the end, for the summary
        self.ended = False
        self.end_reason: str | None = None
        self.left = False  # ended on purpose: reconnects to its id are refused (SessionTable)
        self.started = False  # the responders run: the bot has said hello or sent audio
        self._on_end = on_end
        self._on_started = on_started
        self._handles: list[SessionHandle] = []  # the responders' (released at the end)
        self._make_responders = make_responders
        self._grace: asyncio.TimerHandle | None = None
        self._ending: asyncio.Task[None] | None = None
        self._sink_ready = asyncio.Event()
        self._send: Send | None = None  # the current sink's send, chosen by _update_sink
        self.info = SessionInfo(session_id, sample_rate)
        self.roster = Roster(config.bot_name)
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
            message_ms=config.output_message_ms,
            min_message_ms=config.output_min_message_ms,
        )
        self.playout.on_finished = self._utterance_finished
        self.runners: list[ResponderRunner] = []  # started once the rate is known (_start)
        # each runner hearing audio, its rate and its frame at that rate (0: it takes blocks)
        self._listeners: list[tuple[ResponderRunner, int, int]] = []
        self._hears_bot: list[ResponderRunner] = []
        self._loopback = False
        # a loopback's added latency, timed in C (bridge/server/_playout.c)
        self.latency_probe = LatencyProbe(
            self.playout, LATENCY_BUCKETS_S, ARRIVALS_KEPT, time.monotonic
        )
        self.pipeline = self._new_pipeline()
        self.events.listen(self._tell_responders)
        self._playout_task: asyncio.Task[None] | None = asyncio.create_task(
            self.playout.run(self._sink, self._sink_ready), name=f"playout-{session_id}"
        )

    def _start(self, sample_rate: int) -> None:
        """The rate is known: start the responders and the pipeline at it."""
        self._set_rate(sample_rate)
        self.started = True
        self.runners = [self._start_responder(make) for make in self._make_responders]
        self._listeners = [
            self._listener(r, sample_rate) for r in self.runners if "audio" in r.responder.hooks
        ]
        self._loopback = any(r.responder.loopback for r in self.runners)
        self._replace_pipeline()
        self._hears_bot = [r for r in self.runners if r.responder.hears_bot]
        if self._hears_bot or self.echo_guard is not None:  # else no call a frame sent
            self.playout.on_sent = self._sent
        if self.phase == "in_call":
            self._offer_all("join")
        self._on_started(self)

    def _listener(self, runner: ResponderRunner, bot_rate: int) -> tuple[ResponderRunner, int, int]:
        rate = runner.responder.sample_rate or bot_rate
        frame = 0 if runner.responder.audio_blocks else frame_samples(rate, self.config.frame_ms)
        return runner, rate, frame

    def _start_responder(self, make: ResponderFactory) -> ResponderRunner:
        handle = SessionHandle(self.info, self.playout, self.events, self._responder_dropped)
        self._handles.append(handle)
        responder = make(handle)
        handle.owner = responder
        return ResponderRunner(responder, self.config.responder_queue_frames, self.id)

    def _replace_pipeline(self) -> None:
        """A new pipeline and floor; the old floor is released (it and its pipeline point at
        each other, and at the session)."""
        floor = self.floor
        self.pipeline = self._new_pipeline()
        floor.release()

    def _new_pipeline(self) -> InputPipeline:
        """A pipeline from stream time 0, with its echo guard and the floor on its timeline,
        its listeners and the session's hooks (the byte count goes on from the last one)."""
        c = self.config
        stop_ms = c.turn_vad_stop_ms if c.turn_policy == "adaptive" else c.vad_stop_ms
        vad = VoiceActivityDetector(
            c.frame_ms,
            c.vad_aggressiveness,
            c.vad_start_ms,
            stop_ms,
            c.vad_max_flatness,
            c.vad_onset_ms,
        )
        settings = floor_settings(c, [r.responder for r in self.runners])
        self.echo_guard = (  # only where the user's voice may pause the bot
            EchoGuard(c.frame_ms, c.echo_min_delay_ms, c.echo_max_delay_ms)
            if c.echo_guard and settings.pauses
            else None
        )
        self.floor = Floor(
            settings,
            vad,
            self.playout,
            self.info,
            self._offer_all,
            self.events.publish,
            self.interrupt,
            self.roster.only_self_speaking,
        )
        rates = {rate for _, rate, _ in self._listeners} or {self.sample_rate}
        pipeline = InputPipeline(
            self.sample_rate, rates, c.frame_ms, vad, c.resample_quality, self.echo_guard
        )
        for runner, rate, frame in self._listeners:
            pipeline.listen(rate, runner.offer, frame)
        pipeline.on_event = self.floor.hear
        self.floor.attach(functools.partial(setattr, pipeline, "on_tick"))
        pipeline.on_larger_chunk, pipeline.on_odd = self._larger_chunk, self._odd_chunk
        pipeline.on_signal = self._signal if self.phase == "connected" else None
        pipeline.on_arrival = self.latency_probe.arrived if self._loopback else None
        pipeline.bytes_in = self.stats.bytes_in  # goes on from the last pipeline's
        self.stats.input = pipeline
        return pipeline

    def _set_rate(self, sample_rate: int) -> None:
        if sample_rate != self.sample_rate:
            reports = self.playout.retune(sample_rate)
            if reports:
                self._count_drop("rate_change", "speech queued at the old rate was dropped")
            for report in reports:
                self._offer_all("interrupted", report)
        self.sample_rate = self.info.bot_rate = sample_rate

    def _retune(self, sample_rate: int) -> None:
        """A hello changed the rate mid-session: the newest wins, the pipeline starts over."""
        self._hear_held()  # at the rate it was sent at
        old = self.sample_rate
        self.stats.seconds_in_before += self.pipeline.samples_in / old
        self.stats.segments_before += self.pipeline.speech_segments + self.pipeline.vad.speaking
        self.stats.rate_changes += 1
        if self.stats.rate_changes == 1:
            log.warning(
                "session %s: the bot's hello says %d Hz, the session ran at %d Hz: the input "
                "pipeline and playout restart at %d Hz (further changes are counted)",
                self.id,
                sample_rate,
                old,
                sample_rate,
            )
        self._set_rate(sample_rate)
        self._replace_pipeline()
        for link in self.links.values():  # the source socket hands its audio to the new one
            if link.source and link.connection.audio_sink is not None:
                link.connection.audio_sink = self.audio_sink
        self.latency_probe.clear()
        self.info.user_speaking = False
        self.events.publish("rate_changed", from_rate=old, to_rate=sample_rate)

    # phases

    def enter_call(self, cause: str) -> None:
        """The bot is in the call (meeting audio, a roster, a webhook): queued speech may
        play now; responders get on_join. Idempotent."""
        if self.phase != "connected":
            return
        self.phase = self.phase_reached = "in_call"
        self.pipeline.on_signal = None
        log.info("session %s: the bot is in the call (%s)", self.id, cause)
        self._update_sink()
        self.events.publish("joined", cause=cause)
        self._offer_all("join")

    def leave(self, reason: str) -> None:
        """End the session on purpose (a leave command, a drain, the call ended): the session
        table refuses reconnects to its id for a while (gen3 reconnects after any close)."""
        self.left = True
        self.request_end(reason)

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

    def _current(self, link: Link) -> bool:
        """Whether link still belongs to the session: a socket replaced by a newer one on
        its URL (4000) or refused as a second source (4003) neither feeds nor hears it
        while its close completes; what it still sends is counted and dropped."""
        if self.links.get(link.path_role) is link:
            return True
        self._count_drop("stale_socket", f"a {link.path_role} socket sent after it was let go")
        return False

    def _expire(self) -> None:
        self.request_end("grace period over")

    # messages

    async def receive_text(self, link: Link, text: str) -> None:
        """Handle a text frame: the hello, a roster, or a transcription event; anything else
        is counted and ignored."""
        if not self._current(link):
            return
        try:
            message = parse_text(text)
        except ProtocolError as exc:
            self._refuse(exc)
            return
        if not link.source and not await self._claim_source(link):
            return
        if isinstance(message, Hello):
            self._hello(message)
            await self._responders_ready()
        elif isinstance(message, SpeakerUpdate):
            self._roster(message)
        else:
            self._bot_event(message)

    def _hello(self, hello: Hello) -> None:
        self.info.bot_id = hello.bot_id
        rate = hello.sample_rate or self.sample_rate
        if not self.started:
            self._start(rate)
        elif rate != self.sample_rate:
            self._retune(rate)
        log.info(
            "session %s: bot %s says hello (protocol %s, %s)",
            self.id,
            hello.bot_id,
            hello.protocol_version,
            f"{hello.sample_rate} Hz" if hello.sample_rate else f"no rate: {rate} Hz assumed",
        )
        self.events.publish("hello", bot_id=hello.bot_id, sample_rate=rate)

    def _roster(self, update: SpeakerUpdate) -> None:
        self._ensure_started()
        self.enter_call("speakers")
        change = self.roster.update(update.speakers, self.playout.speaking)
        self.info.participants = self.roster.participants
        if change.became_self is not None:
            log.info(
                "session %s: %r speaks only while the bridge plays: it is the bot itself",
                self.id,
                change.became_self.name,
            )
        participants = list(self.roster.participants.values())
        for runner in self.runners:
            runner.offer("speakers", participants)
        at_ms = self.position_ms()
        self.events.publish("speakers", at_ms=at_ms, speakers=[p.as_dict() for p in participants])
        self._speaker_events(change, at_ms)

    def _speaker_events(self, change: RosterChange, at_ms: float) -> None:
        for kind, who in (("speaker_start", change.started), ("speaker_stop", change.stopped)):
            for participant in who:
                self.events.publish(
                    kind,
                    at_ms=at_ms,
                    name=participant.name,
                    key=participant.key,
                    is_self=participant.is_self,
                )
        if any(not p.is_self for p in change.started):
            self.floor.person_speaks()  # a barge-in deferred for the bot's own voice goes ahead

    def _bot_event(self, event: BotEvent) -> None:
        """A transcription-mode event: segments become `transcript` events."""
        self._ensure_started()
        if event.event == "transcript.segment":
            try:
                segment = TranscriptSegment.model_validate(event.data or event.model_extra)
            except ValueError as exc:
                self._refuse(ProtocolError("invalid_transcript", str(exc).splitlines()[0]))
                return
            self.enter_call("transcript")
            self.events.publish(
                "transcript",
                text=segment.text,
                final=segment.is_final,
                speaker=segment.speaker_label,
                start_ms=_ms(segment.start),
                end_ms=_ms(segment.end),
                confidence=segment.confidence,
                transcribed_by="meetingbaas",
            )
        elif event.event == "error":
            log.warning(
                "session %s: the bot reports a transcription error: %s", self.id, event.data
            )
            self.events.publish("transcription_error", data=event.data)
        else:
            self.events.publish(event.event.replace(".", "_"), data=event.data)

    async def receive_audio(self, link: Link, data: bytes) -> None:
        """Handle a binary frame of meeting audio; the first makes its socket the source."""
        if not self._current(link):
            return
        if link.source:
            self._ensure_started()
            self.receive_source_audio(data, time.monotonic())
            return
        try:
            parse_audio(data)
        except ProtocolError as exc:
            self._refuse(exc)  # bad audio claims nothing
            return
        if await self._claim_source(link):
            self._ensure_started()
            await self._responders_ready()
            self.receive_source_audio(data, time.monotonic())

    async def _responders_ready(self) -> None:
        """Let the responders' on_start finish before this socket's next message is handled
        (as when they started at connect), for at most responder_start_timeout_s."""
        waiting = [r.started.wait() for r in self.runners if not r.started.is_set()]
        if not waiting:
            return
        try:
            async with asyncio.timeout(self.config.responder_start_timeout_s):
                await asyncio.gather(*waiting)
        except TimeoutError:
            log.warning(
                "session %s: a responder's on_start took over %.1f s; its input queues meanwhile",
                self.id,
                self.config.responder_start_timeout_s,
            )

    def _ensure_started(self) -> None:
        if not self.started:  # no hello (or not yet): the URL's rate, or the default
            self._start(self.sample_rate)

    def receive_source_audio(self, data: bytes, read_at: float) -> int:
        """Handle a binary frame from the source socket, read at monotonic time read_at;
        synchronous, so the socket can hand it over inline (bridge.wire.connection, whose
        sink is the pipeline's own `receive`: audio_sink). Returns the bytes that complete
        the next frame (0: any), so the socket need not wake for less."""
        return self.pipeline.receive(data, read_at)

    @property
    def audio_sink(self) -> AudioSink:
        """What the source socket hands each message to: the pipeline's C receive (a new
        pipeline, after a rate change, is handed to the socket by _retune)."""
        return self.pipeline.receive

    def _hear_held(self) -> None:
        """Hear the chunk waiting for the next one now: none will come (the end, a new rate)."""
        self.pipeline.hear_held(time.monotonic())

    def position_ms(self) -> float:
        """Milliseconds of meeting audio received so far: the session's timeline."""
        samples = self.pipeline.samples_in + self.pipeline.held_samples
        heard_s = self.stats.seconds_in_before + samples / self.sample_rate
        return heard_s * 1000

    def _larger_chunk(self, samples: int) -> None:
        """A chunk larger than any before: the playout's lead fits it."""
        if samples > self.playout.chunk_samples:
            self.playout.fit_chunk(samples, self._loopback)

    def _signal(self) -> None:
        """Meeting audio with a nonzero sample: the bot is in the call."""
        self.enter_call("audio")

    def _odd_chunk(self, data: bytes) -> None:
        try:
            parse_audio(data)
        except ProtocolError as exc:
            self._refuse(exc)

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

    def _sent(self, message: np.ndarray) -> None:
        if self.echo_guard is not None:
            self._guard_echo(self.echo_guard, message)
        if self._hears_bot:
            self._bot_audio(message)

    def _guard_echo(self, guard: EchoGuard, message: np.ndarray) -> None:
        """Tell the echo guard each frame of a message and when the bot plays it, on the
        input's timeline."""
        ms = 1000 / self.sample_rate
        ahead_ms = (self.playout.pacer.play_end - time.monotonic()) * 1000
        at_ms = self.pipeline.vad.position_ms + ahead_ms - len(message) * ms
        size = self.playout.frame_size
        for i, frame in enumerate(frames_of(message, size)):
            guard.played(frame, at_ms + i * size * ms)

    def _bot_audio(self, message: np.ndarray) -> None:
        for runner in self._hears_bot:
            runner.offer("bot_audio", message.copy(), self.pipeline.samples_in)

    @property
    def added_latency(self) -> Histogram:
        """What the bridge added to a loopback's audio, from the read of each chunk to the
        write of its echo (less what the pacer held it for the lead on purpose)."""
        probe = self.latency_probe
        histogram = Histogram(probe.bounds)
        histogram.counts, histogram.sum, histogram.count = probe.counts, probe.sum, probe.count
        return histogram

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
            self.detach(link)  # from now on: no playback to it, nothing from it
            await link.connection.close(CloseCode.SECOND_SOURCE, "another socket sends the audio")
            return False
        link.source = True
        self._update_sink()
        return True

    def _responder_dropped(self, reason: str, samples: int) -> None:
        self._count_drop(reason, "a responder dropped input audio")
        if self._loopback:
            self.latency_probe.dropped += samples

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
        """Pick the socket speech goes to; called whenever the links or the phase change.
        Until the bot is in the call there is none: speech waits for the call."""
        link = self._sink_link() if self.phase == "in_call" else None
        self._send = None if link is None else self._sender(link)
        if link is None:
            self._sink_ready.clear()
        else:
            self._sink_ready.set()

    def _sink(self) -> Send | None:
        return self._send

    def _sender(self, link: Link) -> Send:
        """A synchronous frame writer (BotConnection.send_speech: send_audio once the socket
        is open and its backlog under the bound): no task, no drain (the backlog bound
        stands in for flow control). A loopback's frames are timed by the latency probe."""
        connection = link.connection
        connection.audio_lost = self._frames_lost
        probe = self.latency_probe if self._loopback else None
        if probe is not None:
            connection.audio_written = probe.written
        limit = self.config.playback_backlog_bytes
        return SpeechSender(connection.send_speech, limit, self._speech_refused, probe)

    def _speech_refused(self, code: int) -> None:
        """send_speech refused a frame: 1, the socket is not open; 2, its backlog is full."""
        if code == 1:
            self._frames_lost(1)
        else:
            self._count_drop(
                "playback_backlog",
                "the bot is not reading its socket; frames of speech are dropped until it does",
            )

    def _frames_lost(self, frames: int) -> None:
        self.latency_probe.lost()  # never written: no latency to time
        self._count_drop("playback_socket_closed", "a frame of speech was lost", frames)

    # lifecycle

    async def end(self, reason: str, code: int = CloseCode.SESSION_ENDED) -> None:
        """Close the sockets, stop the responder and log the session's summary line."""
        if self.ended:
            return
        self.ended = True
        self.phase = "ended"
        if self._grace is not None:
            self._grace.cancel()
        for link in list(self.links.values()):
            await link.connection.close(code, reason)
        if self._playout_task is not None:
            self._playout_task.cancel()
        self.end_reason = reason
        self._hear_held()
        self.events.publish("session_end", reason=reason)  # the responders' last event
        timeout = self.config.responder_stop_timeout_s
        await asyncio.gather(*(r.stop(timeout) for r in self.runners))
        self._on_end(self)
        log.info("session %s ended (%s): %s", self.id, reason, self.summary())
        self._release()

    def _release(self) -> None:
        """Cut what points back here from the session's parts (callbacks, the cancelled
        playout task's traceback): reference counting alone then frees an ended session,
        and the live ones' objects, frozen out of full collections (heap.py), never need one."""
        self.playout.release()
        self.pipeline.release()
        self.floor.release()
        self.events.release()
        for handle in self._handles:
            handle.release()
        self._playout_task = None

    def summary(self) -> str:
        """One line: duration, audio in and out, speech, drops, underruns."""
        rate = self.sample_rate
        stats = self.stats
        out = self.playout.samples_out
        segments = (
            stats.segments_before + self.pipeline.speech_segments + self.pipeline.vad.speaking
        )
        changes = f", {counted(stats.rate_changes, 'rate change')}" if stats.rate_changes else ""
        dropped = sum((r.dropped for r in self.runners), stats.dropped)
        if self.events.dropped:
            dropped["event"] = self.events.dropped
        return (
            f"{time.monotonic() - stats.started:.1f} s, bot {self.info.bot_id or '?'}, "
            f"{rate} Hz{changes}, {_PHASE_NOTE[self.phase_reached]}, "
            f"audio in {self.position_ms() / 1000:.2f} s ({stats.bytes_in} B), "
            f"out {self.playout.seconds_out:.2f} s ({out * 2} B), "
            f"{counted(segments, 'speech segment')}, "
            f"{counted(self.floor.turns_started, 'turn')} "
            f"({self.floor.turns_continued} continued), "
            f"{counted(stats.barge_ins, 'barge-in')}, {self.floor.false_interruptions} resumed, "
            f"{counted(self.playout.pacer.underruns, 'underrun')}, "
            f"dropped {dict(dropped) or 'none'}, "
            f"responder errors {sum(r.errors for r in self.runners)}, sockets {stats.sockets}"
        )


def _ms(seconds: float | None) -> float | None:
    """A transcription segment's time (seconds) in ms."""
    return None if seconds is None else seconds * 1000
