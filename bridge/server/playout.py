"""The output side of a session: responders' audio, resampled to the bot's rate and paced out.

Audio is produced by `speak()` (any rate; bytes, arrays or an async iterator of chunks),
queued in a bounded PlaybackQueue and sent frame by frame on the pacer's deadline clock to
whatever sink the session currently has: by `run()`'s task when a frame comes due later,
straight from the code that queued it when it is due at once (no task switch per frame).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterable, Callable
from enum import Enum

import numpy as np

from bridge.audio.framer import frame_samples
from bridge.audio.pacer import OutputPacer
from bridge.audio.playback import PlaybackQueue, PlaybackReport
from bridge.audio.resample import Quality, StreamResampler
from bridge.codecs.pcm import to_s16

log = logging.getLogger(__name__)

AudioChunk = bytes | bytearray | memoryview | np.ndarray
AudioSource = AudioChunk | AsyncIterable[AudioChunk]
Send = Callable[[bytes], None]  # writes one frame to the bot's socket, or counts it dropped


class Wait(Enum):
    """What the playout waits for when no frame is due: queued audio, or a socket to send to."""

    AUDIO = "audio"
    SINK = "sink"


class Utterance:
    """A handle on queued speech: await it for its PlaybackReport (played or interrupted)."""

    def __init__(self) -> None:
        self.id = 0  # set when it reaches the queue
        self.report: asyncio.Future[PlaybackReport] = asyncio.get_running_loop().create_future()

    def __await__(self):  # noqa: ANN204 - generator type of Future.__await__
        return self.report.__await__()

    def settle(self, report: PlaybackReport) -> None:
        if not self.report.done():
            self.report.set_result(report)


class SpeechStream:
    """Speech written chunk by chunk from plain code, with no task or await per chunk.

    For live audio: write() queues what fits at once, close() ends the utterance. An
    interrupt (barge-in) ends the stream: later writes queue nothing.
    """

    def __init__(self, playout: Playout, utterance: Utterance, rate: int) -> None:
        self.utterance = utterance
        self.closed = False
        self._playout = playout
        self._resampler = StreamResampler(rate, playout.sample_rate, playout.quality)

    def write(self, audio: AudioChunk) -> int:
        """Queue audio at the stream's rate; returns the samples (at the bot's rate) that did
        not fit in the playback queue and were dropped: the caller counts them."""
        samples = self._resampler.process(to_s16(audio))
        return len(samples) if self.closed else self._playout.put(self.utterance.id, samples)

    def close(self) -> None:
        """End the utterance: what is queued still plays; await .utterance for its report."""
        if not self.closed:
            self._playout.put(self.utterance.id, self._resampler.flush())
            self._playout.end_stream(self)


class Playout:
    """Queues, resamples and paces a session's outgoing speech; interrupt() is barge-in."""

    def __init__(
        self,
        sample_rate: int,
        frame_ms: int,
        lead_ms: float,
        capacity_s: float,
        max_pending: int,
        prebuffer_ms: float = 0.0,
        prefetch_s: float = 1.5,
        quality: Quality = "HQ",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._timing = (frame_ms, lead_ms, capacity_s, prebuffer_ms, prefetch_s)
        self._tune(sample_rate)
        self.seconds_out_before = 0.0  # speech sent at earlier rates (retune)
        self.quality: Quality = quality
        self._clock = clock
        self._max_pending = max_pending
        self._pending: dict[asyncio.Task[None], Utterance] = {}
        self._streams: set[SpeechStream] = set()
        self._order = asyncio.Lock()  # utterances enter the queue in the order spoken
        self._audio_ready = asyncio.Event()
        self._sink: Callable[[], Send | None] = lambda: None  # set by run()
        self._idle = False  # run() waits for audio: queueing code sends what is due itself
        self._pumping = False
        self._space_freed = asyncio.Event()
        self._by_id: dict[int, Utterance] = {}
        self.samples_out = 0
        self.on_sent: Callable[[np.ndarray], None] | None = None  # each frame, once sent
        self.on_finished: Callable[[PlaybackReport], None] | None = None  # each utterance

    def _tune(self, sample_rate: int) -> None:
        frame_ms, lead_ms, capacity_s, prebuffer_ms, prefetch_s = self._timing
        self.sample_rate = sample_rate
        self.pacer = OutputPacer(sample_rate, lead_ms)
        self.queue = PlaybackQueue(int(sample_rate * capacity_s))
        self._frame = np.zeros(frame_samples(sample_rate, frame_ms), dtype="<i2")
        self._prebuffer = max(len(self._frame), int(sample_rate * prebuffer_ms / 1000))
        self._prefetch = int(sample_rate * prefetch_s)

    def retune(self, sample_rate: int) -> list[PlaybackReport]:
        """Play at another rate from now on (the bot's hello changed it): speech queued at
        the old rate is dropped (reports returned); what is spoken next is at the new one."""
        reports = self.interrupt()
        self.seconds_out_before += self.samples_out / self.sample_rate
        self.samples_out = 0
        self._tune(sample_rate)
        return reports

    @property
    def seconds_out(self) -> float:
        """Seconds of speech sent to the bot, at whatever rates."""
        return self.seconds_out_before + self.samples_out / self.sample_rate

    @property
    def speaking(self) -> bool:
        """Speech is queued or still being produced."""
        return bool(self._pending) or bool(self._streams) or not self.queue.idle

    def delay(self) -> float:
        """Seconds a frame queued now would wait to be sent: the queue, and the lead if full."""
        frame = len(self._frame) / self.sample_rate
        ahead = self.queue.available / self.sample_rate + self.pacer.lead_at(self._clock())
        return max(0.0, ahead + frame - self.pacer.lead)

    def speak(self, audio: AudioSource, sample_rate: int | None = None) -> Utterance:
        """Queue audio at sample_rate (default: the bot's); returns at once with its Utterance."""
        self._check_pending()
        utterance = Utterance()
        task = asyncio.create_task(self._feed(utterance, audio, sample_rate or self.sample_rate))
        self._pending[task] = utterance
        task.add_done_callback(self._feeder_done)
        return utterance

    async def open_stream(self, sample_rate: int | None = None) -> SpeechStream:
        """Start an utterance written by SpeechStream.write(), after the speech queued before
        it; speech queued after it waits until it is closed."""
        self._check_pending()
        await asyncio.sleep(0)  # speech spoken just before has its feeder queue for the order
        await self._order.acquire()
        utterance = Utterance()
        utterance.id = self.queue.open()
        self._by_id[utterance.id] = utterance
        stream = SpeechStream(self, utterance, sample_rate or self.sample_rate)
        self._streams.add(stream)
        return stream

    def put(self, utterance_id: int, samples: np.ndarray) -> int:
        """Queue samples of an open utterance now; returns how many did not fit (dropped)."""
        taken = self.queue.write(utterance_id, samples)
        self._wake()
        return len(samples) - taken

    def end_stream(self, stream: SpeechStream) -> None:
        """Close a stream's utterance (what is queued still plays) and let later speech in."""
        stream.closed = True
        self._streams.discard(stream)
        for report in self.queue.close(stream.utterance.id):
            self._settle(report)
        self._order.release()
        self._audio_ready.set()

    def interrupt(self) -> list[PlaybackReport]:
        """Drop all queued and pending speech; returns a report for each utterance cut short."""
        reports = self.queue.clear()
        for report in reports:
            self._settle(report)
        for task, utterance in list(self._pending.items()):
            task.cancel()
            if utterance.id == 0:
                utterance.settle(PlaybackReport(0, 0, 0, interrupted=True))
        for stream in list(self._streams):
            self.end_stream(stream)  # its queued audio was cleared with the rest
        self.pacer.end_stream()
        self._space_freed.set()
        return reports

    async def run(self, sink: Callable[[], Send | None], sink_ready: asyncio.Event) -> None:
        """Pace queued audio out to the current sink until cancelled; waits while there is none."""
        self._sink = sink
        while True:
            self._audio_ready.clear()
            wait = self._pump(self._clock())
            if wait is Wait.AUDIO:
                self._idle = True
                try:
                    await self._audio_ready.wait()
                finally:
                    self._idle = False
            elif wait is Wait.SINK:
                await sink_ready.wait()
            else:
                await asyncio.sleep(wait - self._clock())

    def _wake(self) -> None:
        """Audio was queued: send what is due now from here if run() is idle, else wake it."""
        if self._idle and not self._pumping and self._pump(self._clock()) is Wait.AUDIO:
            return  # all that was due went out; run() sleeps on
        self._audio_ready.set()

    def _pump(self, now: float) -> Wait | float:
        """Send every frame due at `now`; returns what to wait for, or the next frame's due time."""
        frame_size = len(self._frame)
        self._pumping = True
        try:
            while True:
                if not self._frame_ready(frame_size, now):
                    if self.queue.idle:
                        self.pacer.end_stream()
                    return Wait.AUDIO
                send = self._sink()
                if send is None:
                    self.pacer.end_stream()
                    return Wait.SINK
                due = self.pacer.send_at(now, frame_size)
                if due > now:
                    return due
                self._send_frame(send, now)
        finally:
            self._pumping = False

    def _send_frame(self, send: Send, now: float) -> None:
        n, reports = self.queue.read(self._frame)
        self._space_freed.set()
        send(self._frame[:n].tobytes())
        self.pacer.sent(now, n)
        self.samples_out += n
        if self.on_sent is not None:
            self.on_sent(self._frame[:n])
        for report in reports:
            self._settle(report)

    def _check_pending(self) -> None:
        if len(self._pending) + len(self._streams) >= self._max_pending:
            raise RuntimeError(f"more than {self._max_pending} utterances pending (max_pending)")

    def _frame_ready(self, frame_size: int, now: float) -> bool:
        """A whole frame is queued, or the rest of a finished utterance. When the bot has
        nothing left to play (a start, or an underrun mid-stream) the prebuffer is queued
        first, so jitter has its margin again instead of every later frame arriving just in time."""
        available = self.queue.available
        if not self.queue.producing:
            return available > 0
        dry = self.pacer.lead_at(now) == 0
        return available >= (self._prebuffer if dry else frame_size)

    async def _feed(self, utterance: Utterance, source: AudioSource, rate: int) -> None:
        async with self._order:
            while self.queue.available > self._prefetch:  # no synthesis far ahead of playback
                self._space_freed.clear()
                await self._space_freed.wait()
            utterance.id = self.queue.open()
            self._by_id[utterance.id] = utterance
            resampler = StreamResampler(rate, self.sample_rate, self.quality)
            try:
                if isinstance(source, AsyncIterable):
                    async for chunk in source:
                        await self._enqueue(utterance.id, resampler.process(to_s16(chunk)))
                else:
                    await self._enqueue(utterance.id, resampler.process(to_s16(source)))
                await self._enqueue(utterance.id, resampler.flush())
            finally:
                for report in self.queue.close(utterance.id):
                    self._settle(report)
                self._audio_ready.set()

    async def _enqueue(self, utterance_id: int, samples: np.ndarray) -> None:
        while len(samples):
            taken = self.queue.write(utterance_id, samples)
            samples = samples[taken:]
            self._wake()
            if len(samples):
                self._space_freed.clear()
                await self._space_freed.wait()

    def _settle(self, report: PlaybackReport) -> None:
        utterance = self._by_id.pop(report.utterance_id, None)
        if utterance is not None:
            utterance.settle(report)
        if self.on_finished is not None:
            self.on_finished(report)

    def _feeder_done(self, task: asyncio.Task[None]) -> None:
        self._pending.pop(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("speech source failed, its audio ends here: %r", task.exception())
