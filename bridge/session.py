"""One bot's session: its sockets and their roles, the input pipeline, the responder, playout.

A session is created by its first socket and outlives any one socket by a grace period,
so the bot's reconnects keep the same pipeline, responder and queued speech.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from bridge.audio.pipeline import InputPipeline
from bridge.audio.vad import SpeechStarted, SpeechStopped, VoiceActivityDetector
from bridge.config import BridgeConfig
from bridge.playout import Playout, Send
from bridge.plugins.base import Responder, SessionHandle
from bridge.protocol import CloseCode, Hello, PathRole, ProtocolError, parse_audio, parse_text
from bridge.runner import ResponderRunner

log = logging.getLogger(__name__)

ResponderFactory = Callable[[SessionHandle], Responder]
RESPONDER_STOP_TIMEOUT_S = 5.0
SINK_PREFERENCE: tuple[PathRole, ...] = ("input", "dual", "output")


@dataclass(eq=False)
class Link:
    """One socket of a session; `source` once it has sent the hello or audio."""

    connection: ServerConnection
    path_role: PathRole
    source: bool = False


@dataclass
class SessionStats:
    """What a session counts; its summary line is built from these."""

    started: float = field(default_factory=time.monotonic)
    bytes_in: int = 0
    dropped: Counter[str] = field(default_factory=Counter)  # bot messages refused, by reason
    sockets: int = 0
    barge_ins: int = 0


class Session:
    """Routes one bot's sockets through the pipeline to its responder and paces the reply."""

    def __init__(
        self,
        session_id: str,
        sample_rate: int,
        config: BridgeConfig,
        make_responder: ResponderFactory,
        on_end: Callable[[Session], None],
    ) -> None:
        self.id = session_id
        self.sample_rate = sample_rate
        self.config = config
        self.links: dict[PathRole, Link] = {}
        self.stats = SessionStats()
        self.ended = False
        self._on_end = on_end
        self._grace: asyncio.TimerHandle | None = None
        self._ending: asyncio.Task[None] | None = None
        self._sink_ready = asyncio.Event()
        self.playout = Playout(
            sample_rate,
            config.frame_ms,
            config.lead_ms,
            config.playback_buffer_s,
            config.max_pending_utterances,
            config.prebuffer_ms,
            config.resample_quality,
        )
        self.handle = SessionHandle(session_id, sample_rate, self.playout)
        responder = make_responder(self.handle)
        vad = VoiceActivityDetector(
            config.frame_ms,
            config.vad_aggressiveness,
            config.vad_start_ms,
            config.vad_stop_ms,
            config.vad_max_flatness,
        )
        self.pipeline = InputPipeline(
            sample_rate,
            responder.sample_rate or sample_rate,
            config.frame_ms,
            vad,
            config.input_buffer_ms,
            config.resample_quality,
        )
        self.runner = ResponderRunner(responder, config.responder_queue_frames, session_id)
        self._playout_task = asyncio.create_task(
            self.playout.run(self._sink, self._sink_ready), name=f"playout-{session_id}"
        )

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
        self._ending = asyncio.create_task(self.end("grace period over"))

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
            self.handle.bot_id = message.bot_id
            log.info(
                "session %s: bot %s says hello (protocol %d)",
                self.id,
                message.bot_id,
                message.protocol_version,
            )
        else:
            self.runner.offer("speakers", message.speakers)

    async def receive_audio(self, link: Link, data: bytes) -> None:
        """Handle a binary frame of meeting audio."""
        try:
            samples = parse_audio(data)
        except ProtocolError as exc:
            self._refuse(exc)
            return
        if not await self._claim_source(link):
            return
        self.stats.bytes_in += len(data)
        self._hear(samples)

    def _hear(self, samples: np.ndarray) -> None:
        for item in self.pipeline.feed(samples):
            if isinstance(item, np.ndarray):
                self.runner.offer("audio", item.copy())
            elif isinstance(item, SpeechStarted):
                self._barge_in()
                self.runner.offer("speech_start", item)
            elif isinstance(item, SpeechStopped):
                self.runner.offer("speech_stop", item)

    def _barge_in(self) -> None:
        if not (self.config.barge_in and self.runner.responder.interruptible):
            return
        if not self.playout.speaking:
            return
        reports = self.playout.interrupt()
        self.stats.barge_ins += 1
        dropped_ms = sum(r.dropped for r in reports) * 1000 / self.sample_rate
        log.info("session %s: barge-in, %.0f ms of queued speech dropped", self.id, dropped_ms)
        for report in reports:
            self.runner.offer("interrupted", report)

    async def _claim_source(self, link: Link) -> bool:
        """Make link the meeting-audio source, unless another socket already is (then close it)."""
        if link.source:
            return True
        if any(other.source for other in self.links.values() if other is not link):
            self._refuse(ProtocolError("second_source", f"{link.path_role} socket sent audio too"))
            await link.connection.close(CloseCode.SECOND_SOURCE, "another socket sends the audio")
            return False
        link.source = True
        self._update_sink()
        return True

    def _refuse(self, exc: ProtocolError) -> None:
        if not self.stats.dropped[exc.reason]:
            log.warning("session %s: %s (further ones are counted, not logged)", self.id, exc)
        self.stats.dropped[exc.reason] += 1

    # playback

    def _sink_link(self) -> Link | None:
        listeners = {role: link for role, link in self.links.items() if not link.source}
        for role in SINK_PREFERENCE:
            if role in listeners:
                return listeners[role]
        return next(iter(self.links.values()), None)  # a lone socket is both ways

    def _update_sink(self) -> None:
        if self._sink_link() is None:
            self._sink_ready.clear()
        else:
            self._sink_ready.set()

    def _sink(self) -> Send | None:
        link = self._sink_link()
        if link is None:
            return None
        connection = link.connection

        async def send(data: bytes) -> None:
            try:
                await connection.send(data)
            except ConnectionClosed:
                self._refuse(ProtocolError("playback_socket_closed", "a frame of speech was lost"))

        return send

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
        await self.runner.stop(RESPONDER_STOP_TIMEOUT_S)
        self._on_end(self)
        log.info("session %s ended (%s): %s", self.id, reason, self.summary())

    def summary(self) -> str:
        """One line: duration, audio in and out, speech, drops, underruns."""
        rate = self.sample_rate
        stats = self.stats
        out = self.playout.samples_out
        dropped = dict(stats.dropped + self.runner.dropped) or "none"
        return (
            f"{time.monotonic() - stats.started:.1f} s, bot {self.handle.bot_id or '?'}, "
            f"{rate} Hz, audio in {stats.bytes_in / 2 / rate:.2f} s ({stats.bytes_in} B), "
            f"out {out / rate:.2f} s ({out * 2} B), "
            f"{self.pipeline.speech_segments + self.pipeline.vad.speaking} speech segments, "
            f"{stats.barge_ins} barge-ins, {self.playout.pacer.underruns} underruns, "
            f"dropped {dropped}, responder errors {self.runner.errors}, sockets {stats.sockets}"
        )
