"""The input side of a session: bot-rate chunks in, speech events and listener blocks out.

A chunk is worked on whole: one call decimates it to the VAD's 8 kHz and cuts its whole
frames (bridge/audio/_vadcore.c), another judges them; each listener rate gets one
conversion and one framing, and the chunk's whole frames as one block.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from bridge.audio._vadcore import InputCore, VadFramer
from bridge.audio.echo_guard import EchoGuard
from bridge.audio.framer import Framer, frame_samples
from bridge.audio.resample import Quality, StreamResampler
from bridge.audio.vad import VAD_RATE, VoiceActivityDetector

Offer = Callable[[str, np.ndarray], object]  # a listener's: offer("audio", block)
S16 = np.dtype(np.int16)


class FrameStream:
    """Resample a chunk stream to one rate (state kept across chunks) and cut whole frames."""

    def __init__(self, resampler: StreamResampler, frame_ms: int) -> None:
        self.resampler = resampler
        self.framer = Framer(frame_samples(resampler.out_rate, frame_ms))

    def take(self, chunk: np.ndarray) -> np.ndarray:
        """The whole frames this chunk completes, as one block (maybe a view of chunk)."""
        return self.framer.take(self.resampler.process(chunk))


class InputPipeline(InputCore):
    """Runs VAD at 8 kHz (the mean of each group of bot_rate / 8000 samples: no resampler)
    and frames audio at each listener rate, resampled at `quality`.

    An InputCore (bridge/audio/_vadcore.c), so a chunk goes through it in one C call:
    - `receive(data, read_at)`: a session's message of s16le bytes, the socket's sink. A
      chunk that completes no frame on its own (today's bot's 10 ms, of a 20 ms frame) is
      counted and held, and heard with the next: the same frames, at the same moment, for
      half the work. Each rate's whole frames go to the listeners `listen()` added; the
      hooks (`on_event`, `on_tick`, `on_larger_chunk`, `on_arrival`, `on_signal`,
      `on_odd`) are the session's. Returns the bytes that complete the next frame once a
      chunk has fallen short of one (else 0), so the socket need not wake for less.
    - `hear_held(read_at)`: hear the held chunk now (the end, a new rate).
    - `feed(chunk, hear)`: one int16 chunk through the VAD (each event to `hear` as the
      frame that causes it is judged) and framing, a (rate, block) pair a rate returned,
      offered to no listener; `judged` says whether it completed a VAD frame.
    - `samples_in`, `held_samples`, `bytes_in` (settable: a new pipeline carries it on).
    """

    def __init__(
        self,
        bot_rate: int,
        listen_rates: set[int],
        frame_ms: int,
        vad: VoiceActivityDetector,
        quality: Quality = "HQ",
        echo_guard: EchoGuard | None = None,
    ) -> None:
        self.vad = vad
        self._vad_input = VadFramer(bot_rate, VAD_RATE, frame_samples(VAD_RATE, frame_ms))
        self._listeners: dict[int, list[tuple[Offer, int]]] = {r: [] for r in listen_rates}
        routes = [  # the bot's own rate is framed in C as it comes, without a resampler
            (rate, _take(bot_rate, rate, frame_ms, quality), self._listeners[rate])
            for rate in sorted(listen_rates)
        ]
        super().__init__(
            vad_input=self._vad_input,
            vad=vad,
            frame=frame_samples(bot_rate, frame_ms),
            aligned=listen_rates <= {bot_rate},  # no resampler: frames end together
            routes=routes,
            frombuffer=np.frombuffer,
            dtype=S16,
        )
        if echo_guard is not None:  # frames it calls the bot's own echo are no speech; not
            # a method of self, which would make a cycle through the core
            self.masks = functools.partial(_echo_masks, echo_guard, vad, frame_ms)

    def listen(self, rate: int, offer: Offer, frame: int) -> None:
        """Offer each chunk's whole frames at `rate` (one of the listening rates) to
        offer("audio", block): as one block, or (frame: its samples) frame by frame."""
        self._listeners[rate].append((offer, frame))

    def release(self) -> None:
        """Its session has ended: forget the session's hooks and listeners (they made a
        cycle); audio still handed over is counted and judged, and goes nowhere."""
        self.on_event = self.on_tick = self.on_larger_chunk = self.on_arrival = None
        self.on_signal = self.on_odd = None
        for listeners in self._listeners.values():
            listeners.clear()

    @property
    def speech_segments(self) -> int:
        """Speech segments the VAD has ended."""
        return self.vad.segments

    @property
    def vad_delay_ms(self) -> float:
        """How late the VAD hears the meeting: its decimation's group delay."""
        return self._vad_input.delay_ms


def _echo_masks(guard: EchoGuard, vad: VoiceActivityDetector, frame_ms: int, block: bytes) -> bytes:
    """A byte a VAD frame of block: 1 where the echo guard hears the bot's own voice come
    back (the block's frames end at the VAD's position)."""
    size = frame_samples(VAD_RATE, frame_ms)
    samples = np.frombuffer(block, dtype=np.int16)
    start_ms = vad.position_ms
    return bytes(
        bool(guard.is_echo(samples[at : at + size], start_ms + n * frame_ms))
        for n, at in enumerate(range(0, len(samples), size))
    )


def _take(
    bot_rate: int, rate: int, frame_ms: int, quality: Quality
) -> Callable[[np.ndarray], np.ndarray] | None:
    """What cuts a listening rate's frames from a bot chunk: None at the bot's own rate (the
    core frames it), else a resampling FrameStream."""
    if rate == bot_rate:
        return None
    return FrameStream(StreamResampler(bot_rate, rate, quality), frame_ms).take
