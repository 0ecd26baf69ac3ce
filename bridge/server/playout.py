"""The output side of a session: responders' audio, resampled to the bot's rate and paced out.

Audio is produced by `speak()` (any rate; bytes, arrays or an async iterator of chunks),
queued in a bounded PlaybackQueue and sent on the pacer's deadline clock to whatever sink
the session currently has: straight from the code that queued it when it is due at once, from
a timer callback when it comes due later (no task switch per message). The frames due at one
moment go in one message, of at most `message_ms`: a bot sending 100 ms chunks to a live echo
gets one or two messages a chunk back, not five. Speech queued ahead waits to fill messages
of `min_message_ms` (40: the lead at the bot then swings between 40 and 80 ms, not 60 and
80), half the messages of 20 ms frames. So does a live stream's lone frame, when the bot
would still have half a frame's lead as the next one comes (a prebuffer of 60 ms for 20 ms
frames; not at the default 40): it waits for that one, or for the loop's sweep (a timer
every SWEEP_EVERY_S while anything is held) to send it alone with about that half frame
left; the bot plays it when it would have. Else it goes at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterable, Callable
from enum import Enum

import numpy as np

from bridge.audio.framer import frame_samples
from bridge.audio.pacer import OutputPacer
from bridge.audio.playback import PlaybackQueue, PlaybackReport
from bridge.audio.resample import Quality, StreamResampler
from bridge.codecs.pcm import to_s16
from bridge.server._playout import HoldSweep, PlayoutCore, StreamCore

log = logging.getLogger(__name__)

AudioChunk = bytes | bytearray | memoryview | np.ndarray
AudioSource = AudioChunk | AsyncIterable[AudioChunk]
Send = Callable[[bytes], None]  # writes one frame to the bot's socket, or counts it dropped
RESAMPLE_CHUNK_S = 0.25  # a whole array is resampled this much at a time, between awaits
SWEEP_EVERY_S = 0.005  # a held frame goes alone within half of this of its time
_sweeps: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, HoldSweep] = (
    weakref.WeakKeyDictionary()
)


class TooManyPending(RuntimeError):
    """speak() or open_stream() with max_pending utterances already waiting or streaming."""


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


class SpeechStream(StreamCore):
    """Speech written chunk by chunk from plain code, with no task or await per chunk.

    For live audio: write() queues what fits at once, close() ends the utterance. An
    interrupt (barge-in) ends the stream: later writes queue nothing. A StreamCore
    (bridge/server/_playout.c): write() hands a block of s16 samples at the bot's rate to
    the playout's put() itself, and anything else to _write.
    """

    def __init__(self, playout: Playout, utterance: Utterance, rate: int) -> None:
        self.utterance = utterance
        self._utterance_id = utterance.id
        self.closed = False
        self._playout = playout
        self._resampler = StreamResampler(rate, playout.sample_rate, playout.quality)
        self._resamples = rate != playout.sample_rate  # else write() skips its identity call

    def _write(self, audio: AudioChunk) -> int:
        """write() for audio that needs converting or resampling, or a closed stream."""
        samples = to_s16(audio)
        if self._resamples:
            samples = self._resampler.process(samples)
        return len(samples) if self.closed else self._playout.put(self.utterance.id, samples)

    def close(self) -> None:
        """End the utterance: what is queued still plays; await .utterance for its report."""
        if not self.closed:
            self._playout.put(self.utterance.id, self._resampler.flush())
            self._playout.end_stream(self)


class Playout(PlayoutCore):
    """Queues, resamples and paces a session's outgoing speech; interrupt() is barge-in,
    pause() and resume() hold it where it is (speech goes on being queued meanwhile).

    A PlayoutCore (bridge/server/_playout.c): put(), delay() and _send_message() are C's
    own, and so are the attributes the pass-through reads (paused, _running, _pumping,
    _awaiting_sink, _timer, the pacer, the frame and message sizes, samples_out).
    """

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
        message_ms: int = 100,
        min_message_ms: int = 0,
    ) -> None:
        self._timing = (frame_ms, lead_ms, capacity_s, prebuffer_ms, prefetch_s, message_ms)
        self._min_message_ms = min_message_ms
        self._tune(sample_rate)
        self.seconds_out_before = 0.0  # speech sent at earlier rates (retune)
        self.quality: Quality = quality
        self._clock = clock
        self._max_pending = max_pending
        self._pending: dict[asyncio.Task[None], Utterance] = {}
        self._streams: set[SpeechStream] = set()
        self._order = asyncio.Lock()  # utterances enter the queue in the order spoken
        self._sink: Callable[[], Send | None] = _no_sink  # set by run()
        self._running = False  # run() is on: frames go out
        self._timer: asyncio.TimerHandle | None = None  # armed for the next frame due
        self._call_later = None  # the loop's, while run() is on: a live frame may wait
        self._sink_wanted = asyncio.Event()  # a frame is ready and there is no sink: run() waits
        self._awaiting_sink = False  # the event is set (read by the C pass-through)
        self._pumping = False
        self._space_freed = asyncio.Event()
        self._by_id: dict[int, Utterance] = {}
        self.paused = False
        self.samples_out = 0
        self.on_sent: Callable[[np.ndarray], None] | None = None  # each message, once sent
        self.allowed_at = 0.0  # when the pacer let the last message go (a live echo's timing)
        self.on_finished: Callable[[PlaybackReport], None] | None = None  # each utterance

    def _tune(self, sample_rate: int) -> None:
        frame_ms, lead_ms, capacity_s, prebuffer_ms, prefetch_s, message_ms = self._timing
        self.sample_rate = sample_rate
        self.frame_size = frame = frame_samples(sample_rate, frame_ms)
        self.pacer = OutputPacer(sample_rate, lead_ms, frame)
        self.queue = PlaybackQueue(int(sample_rate * capacity_s))
        self._ring = self.queue.ring
        self._message = np.zeros(max(1, sample_rate * message_ms // 1000 // frame) * frame, "<i2")
        self._message_samples = len(self._message)
        # a message waits to hold this many frames, while a frame of lead is left at the bot
        self._min_frames = max(1, int(min(self._min_message_ms, lead_ms - frame_ms) // frame_ms))
        self._prebuffer = max(frame, int(sample_rate * prebuffer_ms / 1000))
        self._prefetch = int(sample_rate * prefetch_s)
        self.chunk_samples = 0  # the largest input chunk the lead was fitted to (fit_chunk)

    def fit_chunk(self, samples: int, loopback: bool = False) -> None:
        """An input chunk of `samples` (more than any before): the lead grows to hold one whole
        (up to message_ms) and a frame for its jitter, and may run over by half a chunk (a
        loopback's, whose speech is never cut by barge-in, by a whole one), so a live echo of
        a v2 bot's 100 ms chunk goes in one message, not one now and the rest from a timer.
        The configured lead is the least it is."""
        self.chunk_samples = samples
        frame_ms, lead_ms, _, _, _, message_ms = self._timing
        chunk_ms = min(samples * 1000 / self.sample_rate, message_ms)
        self.pacer.lead = max(lead_ms, chunk_ms + frame_ms) / 1000
        # A chunk handled late shifts the bot's playback later for good: the next ones then
        # find the lead full by that much, and would each go as two messages (one from a
        # timer: more work exactly when the loop is busy). Up to the slack they go whole. A
        # loopback's echo catch-up sheds a shift once it exceeds the lead less a frame
        # (Playout.delay), so a whole chunk of slack leaves no shift that splits for good.
        over = chunk_ms / 1000 if loopback else chunk_ms / 2000
        self.pacer.slack = max(self.pacer.slack, over)

    def retune(self, sample_rate: int) -> list[PlaybackReport]:
        """Play at another rate from now on (the bot's hello changed it): speech queued at
        the old rate is dropped (reports returned); what is spoken next is at the new one."""
        reports = self.interrupt()
        self.seconds_out_before += self.samples_out / self.sample_rate
        self.samples_out = 0
        self._tune(sample_rate)
        self._cancel_timer()  # it was armed on the old pacer's clock
        return reports

    @property
    def seconds_out(self) -> float:
        """Seconds of speech sent to the bot, at whatever rates."""
        return self.seconds_out_before + self.samples_out / self.sample_rate

    @property
    def speaking(self) -> bool:
        """Speech is queued or still being produced."""
        return bool(self._pending) or bool(self._streams) or not self.queue.idle

    @property
    def streaming(self) -> bool:
        """A stream (SpeechStream) is open: speech queued now waits until it is closed."""
        return bool(self._streams)

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

    def _queue(self, utterance_id: int, samples: np.ndarray) -> int:
        """put()'s way when the samples cannot pass through (something is queued, the lead
        is full, a timer is armed...): queue them; returns how many did not fit."""
        taken = self.queue.write(utterance_id, samples)
        self._wake()
        return len(samples) - taken

    def end_stream(self, stream: SpeechStream) -> None:
        """Close a stream's utterance (what is queued still plays) and let later speech in."""
        self._unhold()
        stream.closed = True
        self._streams.discard(stream)
        for report in self.queue.close(stream.utterance.id):
            self._settle(report)
        self._order.release()
        self._wake()

    def pause(self) -> float:
        """Stop sending (queued speech stays, producers go on within the bounds); returns the
        seconds already sent that the bot still plays (at most the lead)."""
        if self.paused:
            return self.pacer.lead_at(self._clock())
        self._unhold()
        self.paused = True
        return self.pacer.pause(self._clock())

    def resume(self) -> None:
        """Send again from where pause() stopped (after the prebuffer, as any fresh start)."""
        if self.paused:
            self.paused = False
            self._wake()

    def interrupt(self) -> list[PlaybackReport]:
        """Drop all queued and pending speech; returns a report for each utterance cut short.
        A paused playout is no longer paused: there is nothing left to resume."""
        self.paused = False
        self._unhold()  # so its report counts the held frame as cut
        reports = self.queue.clear()
        self._held_for = 0.0  # that frame's wait is not the next message's
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
        """Pace queued audio out to the current sink until cancelled; waits while there is none.
        The frames go from the code that queues them and from timer callbacks, not this task."""
        self._sink = sink
        self._running = True
        loop = asyncio.get_running_loop()
        self._call_later = loop.call_later
        self._sweep = _sweep_of(loop)
        try:
            while True:
                self._sink_wanted.clear()
                self._awaiting_sink = False
                self._wake()
                await self._sink_wanted.wait()
                await sink_ready.wait()
        finally:
            self._running = False
            self._unhold()
            self._call_later = self._sweep = None
            self._cancel_timer()

    def _wake(self) -> None:
        """Audio was queued, or sending may go on: send what is due now, and arm the timer
        for what comes due later (unless a timer or the wait for a sink is on already)."""
        if self._running and not (self._pumping or self._timer or self._awaiting_sink):
            self._after(self._pump(self._clock()))

    def _after(self, wait: Wait | float) -> None:
        if wait is Wait.SINK:
            self._awaiting_sink = True
            self._sink_wanted.set()  # run() waits for a sink, then wakes this again
        elif wait is not Wait.AUDIO:  # a frame is due at `wait`
            self._timer = asyncio.get_running_loop().call_later(wait - self._clock(), self._due)

    def _due(self) -> None:
        self._timer = None
        self._after(self._pump(self._clock()))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _pump(self, now: float) -> Wait | float:
        """Send every frame due at `now`; returns what to wait for, or the next frame's due time."""
        frame_size = self.frame_size
        self._pumping = True
        try:
            while True:
                if self.paused:
                    return Wait.AUDIO  # resume() wakes it
                if not self._frame_ready(frame_size, now):
                    if self.queue.idle:
                        self.pacer.end_stream()
                    return Wait.AUDIO
                send = self._sink()
                if send is None:
                    self.pacer.end_stream()
                    return Wait.SINK
                due = self.pacer.send_at(now, self._message_frames(frame_size) * frame_size)
                if due > now:
                    return due
                self._send_due(send, now, frame_size)
        finally:
            self._pumping = False

    def _send_due(self, send: Send, now: float, frame_size: int) -> None:
        """Send the frames due now in one message (at most message_ms): whole frames while the
        utterance is still produced, the rest of it once it is complete."""
        n = min(self.pacer.frames_due(now, frame_size) * frame_size, len(self._message))
        available = self.queue.available
        if n > available:
            n = available if not self.queue.producing else available // frame_size * frame_size
        message = self._message[:n]
        n, reports = self.queue.read(message)
        self._space_freed.set()
        self._send_message(send, now, message[:n])
        for report in reports:
            self._settle(report)

    def release(self) -> None:
        """Its session has ended: forget the session's callbacks (they made a cycle)."""
        self.on_sent = self.on_finished = None
        self._sink = _no_sink
        self._drop_held()

    def _check_pending(self) -> None:
        if len(self._pending) + len(self._streams) >= self._max_pending:
            raise TooManyPending(
                f"{self._max_pending} utterances are pending already (max_pending)"
            )

    def _message_frames(self, frame_size: int) -> int:
        """Frames the next message waits for: min_message_ms of them, or what there is
        (a live stream's one frame goes at once, as does an utterance's end)."""
        queued = self.queue.available
        ready = queued // frame_size if self.queue.producing else -(-queued // frame_size)
        return max(1, min(self._min_frames, ready))

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
        try:
            await self._feed_in_turn(utterance, source, rate)
        finally:  # played, interrupted or never reached: a generator's process or file ends
            if (close := getattr(source, "aclose", None)) is not None:
                await close()

    async def _feed_in_turn(self, utterance: Utterance, source: AudioSource, rate: int) -> None:
        async with self._order:
            while self.queue.available > self._prefetch:  # no synthesis far ahead of playback
                self._space_freed.clear()
                await self._space_freed.wait()
            utterance.id = self.queue.open()
            self._by_id[utterance.id] = utterance
            resampler = StreamResampler(rate, self.sample_rate, self.quality)
            try:
                chunks = source if isinstance(source, AsyncIterable) else _slices(source, rate)
                async for chunk in chunks:
                    await self._enqueue(utterance.id, resampler.process(to_s16(chunk)))
                await self._enqueue(utterance.id, resampler.flush())
            finally:
                for report in self.queue.close(utterance.id):
                    self._settle(report)
                self._wake()

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


def _no_sink() -> Send | None:
    return None


def _sweep_of(loop: asyncio.AbstractEventLoop) -> HoldSweep:
    """The loop's HoldSweep: one timer for every playout's held frames on it."""
    sweep = _sweeps.get(loop)
    if sweep is None:
        sweep = _sweeps[loop] = HoldSweep(SWEEP_EVERY_S)
    return sweep


async def _slices(audio: AudioChunk, rate: int) -> AsyncIterable[np.ndarray]:
    """A whole recording in RESAMPLE_CHUNK_S slices: resampling a long one is bounded work
    between two awaits, never a stall of the loop as long as the recording."""
    samples = to_s16(audio)
    step = max(1, int(rate * RESAMPLE_CHUNK_S))
    for start in range(0, len(samples), step):
        yield samples[start : start + step]
        await asyncio.sleep(0)  # other sessions' turn, even while the queue has room
